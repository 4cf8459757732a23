// Dependent place menus: a <select data-parent="NAME"> only offers the options whose data-in is the value
// chosen in the select named NAME of the same form (county -> township -> village). No library, no CDN.
(function () {
  "use strict";
  function link(child) {
    var form = child.form;
    var parent = form && form.elements.namedItem(child.getAttribute("data-parent"));
    if (!parent || !parent.addEventListener) { return; }
    function sync() {
      var chosen = parent.value;
      var keep = false;
      Array.prototype.forEach.call(child.options, function (option) {
        var owner = option.getAttribute("data-in");
        var shown = !owner || !chosen || owner === chosen;
        option.hidden = !shown;
        option.disabled = !shown;
        if (shown && option.selected) { keep = true; }
      });
      if (!keep) { child.value = ""; }
      child.dispatchEvent(new Event("change"));
    }
    parent.addEventListener("change", sync);
    sync();
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("select[data-parent]"), link);
    // forms that change someone else's account ask first
    Array.prototype.forEach.call(document.querySelectorAll("form[data-confirm]"), function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
    // "select all" boxes of the bulk forms
    Array.prototype.forEach.call(document.querySelectorAll("input[data-check-all]"), function (box) {
      box.addEventListener("change", function () {
        var name = box.getAttribute("data-check-all");
        Array.prototype.forEach.call(document.querySelectorAll("input[type=checkbox][name='" + name + "']"), function (item) {
          item.checked = box.checked;
        });
      });
    });
  });
})();
