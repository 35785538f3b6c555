// Passkeys and security keys (WebAuthn) in the portal: registers them, lists and removes mine,
// and steps up the session with one. Drives the _webauthn.html include (#webauthn); the pages'
// CSP allows no inline code, so everything is here. Every POST carries the session's CSRF token.
(function () {
  "use strict";

  // ---- base64url <-> ArrayBuffer ----
  function toBuffer(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = window.atob(b64), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes.buffer;
  }
  function toText(buffer) {
    if (!buffer) { return null; }
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return window.btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function descriptors(list) {
    return (list || []).map(function (d) { return Object.assign({}, d, { id: toBuffer(d.id) }); });
  }

  // ---- options (JSON from the broker) -> what navigator.credentials wants ----
  function createOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = toBuffer(json.challenge);
    o.user = Object.assign({}, json.user, { id: toBuffer(json.user.id) });
    o.excludeCredentials = descriptors(json.excludeCredentials);
    return { publicKey: o };
  }
  function getOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = toBuffer(json.challenge);
    o.allowCredentials = descriptors(json.allowCredentials);
    return { publicKey: o };
  }

  // ---- a credential -> JSON for the broker (WebAuthn's RegistrationResponseJSON / AuthenticationResponseJSON) ----
  function credentialJSON(cred) {
    var r = cred.response, response = { clientDataJSON: toText(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      response.userHandle = toText(r.userHandle);
    }
    return { id: cred.id, rawId: toText(cred.rawId), type: cred.type, response: response,
             authenticatorAttachment: cred.authenticatorAttachment || null,
             clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {} };
  }

  window.brokerWebAuthn = { toBuffer: toBuffer, toText: toText, createOptions: createOptions,
                            getOptions: getOptions, credentialJSON: credentialJSON };

  var root = document.getElementById("webauthn");
  if (!root) { return; }
  var status = document.getElementById("webauthn-status");
  var list = document.getElementById("webauthn-list");

  function say(text) { status.textContent = text; }

  function call(method, url, body) {
    var init = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (method === "POST") {
      init.headers["X-CSRF-Token"] = root.getAttribute("data-csrf");  // renewed by a step-up
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body || {});
    }
    return fetch(url, init).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) {
          var err = (data && data.error) || {};
          throw new Error((err.message || ("HTTP " + resp.status)) + (err.code ? " (" + err.code + ")" : ""));
        }
        return data;
      });
    });
  }

  function show(data) {
    if (!list) { return; }
    list.textContent = "";
    data.credentials.forEach(function (c) {
      var item = document.createElement("li"), name = document.createElement("span"), remove = document.createElement("button");
      item.className = "webauthn-credential";
      name.textContent = c.label + " · added " + c.created_at.slice(0, 10) +
        (c.last_used_at ? " · last used " + c.last_used_at.slice(0, 10) : "");
      remove.type = "button";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", "Remove " + c.label);
      remove.addEventListener("click", function () {
        call("POST", "/mfa/webauthn/credentials/" + c.id + "/remove").then(function (d) {
          show(d); say("Removed " + c.label + ".");
        }).catch(function (e) { say(e.message); });
      });
      item.appendChild(name);
      item.appendChild(document.createTextNode(" "));
      item.appendChild(remove);
      list.appendChild(item);
    });
    if (!data.credentials.length) {
      var none = document.createElement("li");
      none.className = "muted";
      none.textContent = "No security key or passkey yet.";
      list.appendChild(none);
    }
  }

  function refresh() { return call("GET", "/mfa/webauthn/credentials").then(show); }

  var form = document.getElementById("webauthn-register");
  if (form) form.addEventListener("submit", function (event) {
    event.preventDefault();
    var label = document.getElementById("webauthn-label").value.trim() || "Passkey";
    say("Follow your browser's prompt…");
    var code = document.getElementById("webauthn-enrolment-code");
    var start = code ? { enrolment_code: code.value.trim() } : {};
    call("POST", "/mfa/webauthn/register/options", start).then(function (options) {
      return navigator.credentials.create(createOptions(options));
    }).then(function (cred) {
      return call("POST", "/mfa/webauthn/register", { credential: credentialJSON(cred), label: label });
    }).then(function (stored) {
      say("Registered " + stored.label + ".");
      return refresh();
    }).catch(function (e) { say(e.message); });
  });

  document.getElementById("webauthn-step-up").addEventListener("click", function () {
    say("Follow your browser's prompt…");
    call("POST", "/mfa/webauthn/authenticate/options").then(function (options) {
      return navigator.credentials.get(getOptions(options));
    }).then(function (cred) {
      return call("POST", "/mfa/webauthn/authenticate",
                  { credential: credentialJSON(cred), next: root.getAttribute("data-next") || null });
    }).then(function (done) {
      say("Confirmed with your security key or passkey.");
      // the step-up renewed the session: its new CSRF token for this page's later posts and forms
      root.setAttribute("data-csrf", done.csrf);
      document.querySelectorAll('input[name="csrf_token"]').forEach(function (input) { input.value = done.csrf; });
      if (done.next && done.next !== window.location.pathname + window.location.search) {
        window.location.assign(done.next);
      } else {
        return refresh();
      }
    }).catch(function (e) { say(e.message); });
  });

  if (list) { refresh().catch(function (e) { say(e.message); }); }
})();
