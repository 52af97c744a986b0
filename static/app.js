// Lanyard's own behaviours, the few that htmx leaves to the page: the add/edit dialog, the
// provider-aware form fields, and showing why an htmx request failed. Loaded with `defer`;
// there is no inline script anywhere (the Content-Security-Policy forbids it).
(function () {
  "use strict";

  function dialog() {
    return document.getElementById("configuration-dialog");
  }

  function closeDialog() {
    var d = dialog();
    if (d && d.open) d.close();
  }

  // The form's base URL and key fields follow the chosen provider.
  function adaptProviderFields(root) {
    if (!root || !root.querySelectorAll) return;
    root.querySelectorAll("select[name=provider]").forEach(function (select) {
      if (select.dataset.adapted) return;
      select.dataset.adapted = "true";
      var form = select.form;
      var apply = function () {
        var option = select.selectedOptions[0];
        if (!option || !form) return;
        var needsBaseUrl = option.dataset.needsBaseUrl === "true";
        var baseUrl = form.querySelector("input[name=base_url]");
        var note = form.querySelector("#base_url-requirement");
        if (baseUrl) {
          baseUrl.required = needsBaseUrl;
          baseUrl.placeholder = option.dataset.baseUrlPlaceholder || "";
        }
        if (note) note.textContent = needsBaseUrl ? "(required)" : "(optional: empty means the provider's default)";
        var key = form.querySelector("input[name=api_key]");
        if (key) key.disabled = option.dataset.acceptsApiKey !== "true";
      };
      select.addEventListener("change", apply);
      apply();
    });
  }

  // The configuration form's provider, key and base URL describe "A new connection" (and, on
  // the edit form, the connection the configuration uses now): hidden while another is picked.
  // Without JavaScript they are simply shown, and used only for those two choices.
  function adaptConnectionPicker(root) {
    if (!root || !root.querySelectorAll) return;
    root.querySelectorAll("select[name=connection_id]").forEach(function (select) {
      if (select.dataset.adapted) return;
      select.dataset.adapted = "true";
      var fields = select.form ? select.form.querySelector("#connection-fields") : null;
      if (!fields) return;
      var apply = function () {
        var current = fields.dataset.currentConnection;
        fields.hidden = !(select.value === "new" || (current && select.value === current));
      };
      select.addEventListener("change", apply);
      apply();
    });
  }

  // Controls that need JavaScript (such as "Test before saving") are hidden without it.
  function revealScriptOnly(root) {
    if (!root || !root.querySelectorAll) return;
    root.querySelectorAll(".js-only[hidden]").forEach(function (element) {
      element.hidden = false;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    adaptProviderFields(document);
    adaptConnectionPicker(document);
    revealScriptOnly(document);
  });
  document.addEventListener("htmx:load", function (event) {
    adaptProviderFields(event.detail.elt);
    adaptConnectionPicker(event.detail.elt);
    revealScriptOnly(event.detail.elt);
  });

  // A form loaded into the dialog opens it.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "dialog-body") {
      var d = dialog();
      if (d && !d.open) d.showModal();
      var first = target.querySelector("input[name=name]");
      if (first) first.focus();
    }
  });

  // A saved form closes the dialog (the server sends HX-Trigger: configuration-saved).
  document.addEventListener("configuration-saved", closeDialog);

  document.addEventListener("click", function (event) {
    var closer = event.target.closest ? event.target.closest("[data-close-dialog]") : null;
    if (closer && dialog() && dialog().open) {
      event.preventDefault();
      closeDialog();
    }
  });

  // Nothing typed into the dialog (a key above all) outlives it.
  document.addEventListener(
    "close",
    function (event) {
      if (event.target.id === "configuration-dialog") {
        var body = document.getElementById("dialog-body");
        if (body) body.replaceChildren();
      }
    },
    true
  );

  function flash(message) {
    var box = document.getElementById("flash");
    if (!box) return;
    box.textContent = message;
    box.className = "flash flash-error";
  }

  // htmx does not swap error responses: say what went wrong instead.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var message = "The request failed (HTTP " + xhr.status + ").";
    try {
      var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var detail = page.querySelector(".error-message");
      if (detail && detail.textContent) message = detail.textContent;
    } catch (ignored) {
      // keep the generic message
    }
    flash(message);
  });
  document.addEventListener("htmx:sendError", function () {
    flash("Lanyard could not be reached. Check your connection and try again.");
  });
  document.addEventListener("htmx:beforeRequest", function () {
    var box = document.getElementById("flash");
    if (box) {
      box.textContent = "";
      box.className = "";
    }
  });
})();
