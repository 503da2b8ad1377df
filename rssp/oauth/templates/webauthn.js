(function () {
  "use strict";
  // The security key step of the login, registration and consent pages:
  // the form with id webauthn-form carries the WebAuthn options (JSON, in
  // data-options); submitting it asks the browser for the key, puts the
  // key's answer (JSON) into the field "webauthn" and sends the form.
  var form = document.getElementById("webauthn-form");
  if (!form) { return; }
  var status = document.getElementById("webauthn-status");
  function say(text) { if (status) { status.textContent = text; } }
  function bytes(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out;
  }
  function b64u(buf) {
    var b = new Uint8Array(buf), s = "";
    for (var i = 0; i < b.length; i++) { s += String.fromCharCode(b[i]); }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function descriptors(list) {
    (list || []).forEach(function (c) { c.id = bytes(c.id); });
  }
  function ask() {
    var pk = JSON.parse(form.getAttribute("data-options")).publicKey;
    pk.challenge = bytes(pk.challenge);
    if (pk.user) {
      pk.user.id = bytes(pk.user.id);
      descriptors(pk.excludeCredentials);
      return navigator.credentials.create({ publicKey: pk }).then(function (c) {
        return {
          id: c.id, rawId: b64u(c.rawId), type: c.type,
          clientExtensionResults: c.getClientExtensionResults(),
          response: {
            clientDataJSON: b64u(c.response.clientDataJSON),
            attestationObject: b64u(c.response.attestationObject),
            transports: c.response.getTransports ? c.response.getTransports() : []
          }
        };
      });
    }
    descriptors(pk.allowCredentials);
    return navigator.credentials.get({ publicKey: pk }).then(function (c) {
      return {
        id: c.id, rawId: b64u(c.rawId), type: c.type,
        clientExtensionResults: c.getClientExtensionResults(),
        response: {
          clientDataJSON: b64u(c.response.clientDataJSON),
          authenticatorData: b64u(c.response.authenticatorData),
          signature: b64u(c.response.signature),
          userHandle: c.response.userHandle ? b64u(c.response.userHandle) : null
        }
      };
    });
  }
  form.addEventListener("submit", function (ev) {
    var button = ev.submitter;
    if (button && button.value === "deny") { return; }
    ev.preventDefault();
    if (!window.PublicKeyCredential) {
      say("This browser cannot use security keys.");
      return;
    }
    say("Use your security key now.");
    ask().then(function (answer) {
      form.elements.webauthn.value = JSON.stringify(answer);
      if (button && button.name) {
        var h = document.createElement("input");
        h.type = "hidden"; h.name = button.name; h.value = button.value;
        form.appendChild(h);
      }
      form.submit();
    }, function (e) {
      say("The security key did not answer (" + e.name + "). Try again.");
    });
  });
})();
