-- Version 3 (SQLite schema version 7): the guards of credentials' factor
-- checks that hold across nodes: a lease serialising the checks of a
-- credential's factors (holder, until: Unix nanoseconds; '' and 0: free),
-- and the last TOTP time step accepted (NULL: none), so a code is accepted
-- once.

ALTER TABLE credentials ADD COLUMN factor_holder text NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN factor_until bigint NOT NULL DEFAULT 0;
ALTER TABLE credentials ADD COLUMN totp_step bigint;
