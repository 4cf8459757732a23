"use strict";
// The simulator page: text is always inserted with textContent, never as HTML.
const state = { groups: [], chat: null, after: 0, entries: [], unread: {} };
const $ = (id) => document.getElementById(id);
const ROLE = { villager: "村民", party_member: "党员", cadre: "村干部", staff: "纪检干部", bot: "机器人" };

async function loadState() {
  const res = await fetch("/api/state");
  const data = await res.json();
  state.groups = data.groups;
  renderChats();
  if (!state.chat && state.groups.length) selectChat(state.groups[0].name);
}

function chatsList() {
  const list = state.groups.map((g) => ({ key: g.name, label: g.name, people: g.people }));
  const everyone = new Map();
  state.groups.forEach((g) => g.people.forEach((p) => everyone.set(p.name, p)));
  list.push({ key: "private", label: "私聊机器人", people: [...everyone.values()] });
  return list;
}

function renderChats() {
  const ul = $("chat-list");
  ul.replaceChildren();
  for (const chat of chatsList()) {
    const li = document.createElement("li");
    li.textContent = chat.label;
    if (chat.key === "private") li.classList.add("private");
    if (chat.key === state.chat) li.classList.add("active");
    const n = state.unread[chat.key] || 0;
    if (n) { const b = document.createElement("span"); b.className = "badge"; b.textContent = n; li.append(b); }
    li.addEventListener("click", () => selectChat(chat.key));
    ul.append(li);
  }
}

function selectChat(key) {
  state.chat = key;
  state.unread[key] = 0;
  const chat = chatsList().find((c) => c.key === key);
  $("chat-title").textContent = chat ? chat.label : key;
  const select = $("sender");
  select.replaceChildren();
  for (const p of chat ? chat.people : []) {
    const o = document.createElement("option");
    o.value = p.name; o.textContent = `${p.name}(${ROLE[p.role] || p.role})`;
    select.append(o);
  }
  const o = document.createElement("option");
  o.value = ""; o.textContent = "新村民……";
  select.append(o);
  $("new-name").hidden = select.value !== "";
  renderChats();
  renderMessages();
}

function entryChatKey(e) { return e.chat.startsWith("private:") ? "private" : e.chat; }

function renderMessages() {
  const ol = $("messages");
  ol.replaceChildren();
  for (const e of state.entries.filter((x) => entryChatKey(x) === state.chat)) {
    const li = document.createElement("li");
    if (e.from_bot) li.classList.add("bot");
    const meta = document.createElement("div");
    meta.className = "meta";
    const who = e.from_bot ? `机器人 → ${e.chat.replace("private:", "私聊 ")}` : `${e.sender}(${ROLE[e.role] || e.role})`;
    meta.textContent = `${who} · ${e.at.slice(11, 16)}`;
    li.append(meta);
    if (e.text) { const b = document.createElement("div"); b.className = "bubble"; b.textContent = e.text; li.append(b); }
    if (e.image) { const img = document.createElement("img"); img.src = e.image; img.alt = "照片"; li.append(img); }
    ol.append(li);
  }
  ol.scrollTop = ol.scrollHeight;
}

async function poll() {
  for (;;) {
    try {
      const res = await fetch(`/api/messages?after=${state.after}`);
      const items = await res.json();
      for (const e of items) {
        state.entries.push(e);
        state.after = Math.max(state.after, e.seq);
        const key = entryChatKey(e);
        if (key !== state.chat) state.unread[key] = (state.unread[key] || 0) + 1;
      }
      if (items.length) { renderChats(); renderMessages(); }
    } catch (err) {
      $("hint").textContent = "与机器人的连接中断,正在重试……";
      await new Promise((r) => setTimeout(r, 2000));
      $("hint").textContent = "";
    }
  }
}

$("sender").addEventListener("change", () => { $("new-name").hidden = $("sender").value !== ""; });

$("composer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const sender = $("sender").value || $("new-name").value.trim();
  if (!sender) { $("hint").textContent = "请填写新村民的名字"; return; }
  const text = $("text").value.trim();
  const image = $("image").files[0];
  if (!text && !image) return;
  const form = new FormData();
  form.append("sender", sender);
  form.append("chat", state.chat === "private" ? `private:${sender}` : state.chat);
  form.append("text", text);
  if (image) form.append("image", image);
  const res = await fetch("/api/send", { method: "POST", body: form });
  if (!res.ok) { $("hint").textContent = await res.text(); return; }
  $("text").value = ""; $("image").value = ""; $("hint").textContent = "";
});

loadState().then(poll);
