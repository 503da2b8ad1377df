-- Version 5: a credential's eIDAS (or other) signature qualifier, such as
-- eu_eidas_qes; empty when the credential carries none.

ALTER TABLE credentials ADD COLUMN signature_qualifier TEXT NOT NULL DEFAULT '';
