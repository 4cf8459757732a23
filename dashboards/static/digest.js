// The patrol digest's keyboard, as in a mail client: j/k move a visible focus between the flags, 1-4 give the
// focused flag a verdict with its own form (属实, 误报, 需跟进, 备注), "o" opens it, "?" shows the keys.
// A verdict (by key or by a button) is sent with fetch and the CSRF token; the server answers with the card as
// it is now, which replaces the old one in place, and the focus moves on. Without JavaScript the same forms post
// and come back to the digest. No library, no CDN.
(function () {
  "use strict";
  var focused = -1;

  function cards() { return Array.prototype.slice.call(document.querySelectorAll("article.flag[data-flag]")); }
  function status(text, bad) {
    var box = document.getElementById("digest-status");
    if (!box) { return; }
    box.textContent = text;
    box.className = "status " + (bad ? "error" : "ok");
    box.hidden = !text;
  }
  function focusAt(index) {
    var all = cards();
    if (!all.length) { return; }
    index = Math.max(0, Math.min(index, all.length - 1));
    all.forEach(function (card) { card.classList.remove("focused"); card.removeAttribute("aria-current"); });
    focused = index;
    var card = all[index];
    card.classList.add("focused");
    card.setAttribute("aria-current", "true");
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest" });
  }
  function current() { var all = cards(); return focused >= 0 ? all[focused] : null; }

  function send(form, verdict) {
    var card = form.closest("article.flag");
    var data = new FormData(form);
    data.set("verdict", verdict);
    if (verdict === "note" && !String(data.get("note") || "").trim()) {
      status("请先填写备注再保存。", true);
      var note = form.querySelector("input[name=note]");
      if (note) { note.focus(); }
      return;
    }
    var token = form.querySelector("input[name=_csrf]");
    Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) { b.disabled = true; });
    fetch(form.action, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": token ? token.value : "" }
    }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.json();
    }).then(function (answer) {
      var holder = document.createElement("div");
      holder.innerHTML = answer.html;
      var fresh = holder.querySelector("article.flag");
      var all = cards();
      var index = all.indexOf(card);
      card.replaceWith(fresh);
      bind(fresh);
      status("已记录：" + (fresh.querySelector(".verdict-tag") || { textContent: "" }).textContent.trim(), false);
      if (verdict === "note") { focusAt(index); } else { focusAt(index + 1); }
    }).catch(function (error) {
      Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) { b.disabled = false; });
      status(error.message === "403" ? "登录已过期或安全令牌无效，请刷新页面后重试。" : "保存失败，请稍后重试（结论没有记录）。", true);
    });
  }

  function bind(card) {
    var form = card.querySelector("form.verdict");
    if (!form) { return; }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = event.submitter;
      var verdict = button && button.value ? button.value : "note";
      focused = cards().indexOf(card);
      send(form, verdict);
    });
    card.addEventListener("click", function (event) {
      if (event.target.closest("a, button, input")) { return; }
      focusAt(cards().indexOf(card));
    });
  }

  function help(show) {
    var panel = document.getElementById("keys-help");
    if (panel) { panel.hidden = show === undefined ? !panel.hidden : !show; }
  }

  document.addEventListener("DOMContentLoaded", function () {
    cards().forEach(bind);
    var hint = document.getElementById("keys-hint");
    if (hint) { hint.hidden = false; }
    var close = document.getElementById("keys-close");
    if (close) { close.addEventListener("click", function () { help(false); }); }
    if (location.hash.indexOf("#flag-") === 0) {
      var target = document.getElementById(location.hash.slice(1));
      if (target) { focused = cards().indexOf(target); }
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var field = event.target.closest && event.target.closest("input, textarea, select");
    if (field) {
      var noteForm = field.name === "note" && field.closest("form.verdict");
      if (event.key === "Enter" && noteForm) {
        // Enter in the note field saves a note; the browser would otherwise press the first button (属实)
        event.preventDefault();
        focused = cards().indexOf(noteForm.closest("article.flag"));
        send(noteForm, "note");
        return;
      }
      if (event.key === "Escape") { field.blur(); var card = field.closest("article.flag"); if (card) { card.focus(); } }
      return;
    }
    var key = event.key;
    if (key === "?") { help(); event.preventDefault(); return; }
    if (key === "Escape") { help(false); return; }
    if (key === "j") { focusAt(focused + 1); event.preventDefault(); return; }
    if (key === "k") { focusAt(focused < 0 ? 0 : focused - 1); event.preventDefault(); return; }
    var card = current();
    if (!card) { return; }
    if (key === "o") { var link = card.querySelector("a.group"); if (link) { location.href = link.href; } return; }
    if (key >= "1" && key <= "9") {
      var form = card.querySelector("form.verdict");
      var buttons = form ? form.querySelectorAll("button[name=verdict]") : [];
      var button = buttons[Number(key) - 1];
      if (!button) { return; }
      event.preventDefault();
      if (button.value === "note") {
        var note = form.querySelector("input[name=note]");
        if (note && note.value.trim()) { send(form, "note"); } else if (note) { note.focus(); status("请输入备注，按回车保存；按 Esc 返回。", false); }
        return;
      }
      send(form, button.value);
    }
  });
})();
