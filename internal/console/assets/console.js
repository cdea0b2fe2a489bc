// Usher console: reveal and copy keys, and check the initial twin JSON
// before a form is sent (the server checks it again). No inline script:
// the Content-Security-Policy allows only this file.
(function () {
  "use strict";

  var MASK = "••••••••••••••••••••";

  function keyOf(id) {
    var el = document.getElementById(id);
    if (!el) { return null; }
    return el.hasAttribute("data-key") ? el.getAttribute("data-key") : el.textContent;
  }

  function reveal(button) {
    var el = document.getElementById(button.getAttribute("data-target"));
    if (!el) { return; }
    var shown = button.getAttribute("aria-pressed") === "true";
    el.textContent = shown ? MASK : el.getAttribute("data-key");
    button.setAttribute("aria-pressed", shown ? "false" : "true");
    button.firstChild.nodeValue = shown ? "Show" : "Hide";
  }

  function copy(button) {
    var text = keyOf(button.getAttribute("data-target"));
    if (text === null) { return; }
    var label = button.firstChild;
    function done() {
      button.setAttribute("data-copied", "true");
      label.nodeValue = "Copied";
      setTimeout(function () { label.nodeValue = "Copy"; }, 2000);
    }
    function failed() {
      button.setAttribute("data-copied", "false");
      label.nodeValue = "Copy failed";
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, failed);
    } else {
      failed();
    }
  }

  // twinProblem mirrors the server's rules: empty, or a JSON object with
  // at most "tags" and "properties", whose only member is "desired", all
  // objects. It returns a sentence, or "" when the text is fine.
  function twinProblem(text) {
    if (text.trim() === "") { return ""; }
    var v;
    try {
      v = JSON.parse(text);
    } catch (e) {
      return "The initial twin is not valid JSON: " + e.message;
    }
    function isObject(x) { return x !== null && typeof x === "object" && !Array.isArray(x); }
    if (!isObject(v)) {
      return 'The initial twin must be a JSON object such as {"tags":{},"properties":{"desired":{}}}.';
    }
    var k;
    for (k in v) {
      if (k !== "tags" && k !== "properties") {
        return 'The initial twin may only have "tags" and "properties"; remove "' + k + '".';
      }
    }
    if ("tags" in v && !isObject(v.tags)) {
      return 'In the initial twin, "tags" must be a JSON object in braces { }.';
    }
    if ("properties" in v) {
      if (!isObject(v.properties)) {
        return 'In the initial twin, "properties" must be a JSON object in braces { }.';
      }
      for (k in v.properties) {
        if (k !== "desired") {
          return 'The initial twin\'s "properties" may only have "desired"; remove "' + k + '" (devices report their own properties).';
        }
      }
      if ("desired" in v.properties && !isObject(v.properties.desired)) {
        return 'In the initial twin, "properties.desired" must be a JSON object in braces { }.';
      }
    }
    return "";
  }

  function showTwinProblem(textarea, message) {
    var id = "initial-twin-error";
    var el = document.getElementById(id);
    if (!el) {
      el = document.createElement("p");
      el.id = id;
      el.className = "error";
      textarea.parentNode.insertBefore(el, textarea.nextSibling);
    }
    el.textContent = message;
    el.hidden = message === "";
    var described = (textarea.getAttribute("aria-describedby") || "").split(" ").filter(function (s) {
      return s !== "" && s !== id;
    });
    if (message !== "") {
      described.push(id);
      textarea.setAttribute("aria-invalid", "true");
    } else {
      textarea.removeAttribute("aria-invalid");
    }
    textarea.setAttribute("aria-describedby", described.join(" "));
  }

  document.addEventListener("click", function (ev) {
    var button = ev.target.closest && ev.target.closest("button");
    if (!button) { return; }
    if (button.classList.contains("reveal")) { reveal(button); }
    if (button.classList.contains("copy")) { copy(button); }
  });

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var textarea = form.querySelector && form.querySelector("textarea[name=initialTwin]");
    if (!textarea) { return; }
    var problem = twinProblem(textarea.value);
    showTwinProblem(textarea, problem);
    if (problem !== "") {
      ev.preventDefault();
      textarea.focus();
    }
  });
})();
