// The review page: keyboard decisions sent to the server, cards updated in place.
// Text from the results (labels, paths) is only ever set with textContent, never as HTML.
"use strict";

(function () {
  const token = document.querySelector('meta[name="review-token"]').content;
  const view = JSON.parse(document.querySelector('meta[name="review-view"]').content);
  const tab = sessionStorage.getItem("review-tab") || Math.random().toString(36).slice(2, 10);
  sessionStorage.setItem("review-tab", tab);
  const status = document.getElementById("status");
  const cards = () => Array.from(document.querySelectorAll("#gallery .card"));
  let lastSeen = null;

  function say(text, bad) {
    status.textContent = text;
    status.className = bad ? "status bad" : "status";
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Review-Token": token },
      body: JSON.stringify({ tab: tab, ...body }),
    });
    const data = await response.json().catch(() => ({ error: "no answer" }));
    if (!response.ok) {
      if (data.rows) data.rows.forEach(update);
      throw new Error(data.error || response.statusText);
    }
    if (data.summary) summary(data.summary);
    if (data.counts) counts(data.counts);
    return data;
  }

  function summary(s) {
    for (const key of ["reviewed", "accepted", "corrected", "skipped"]) {
      const el = document.getElementById(key);
      if (el) el.textContent = s[key];
    }
    lastSeen = s.last_id;
  }

  function counts(entries) {
    const links = Array.from(document.querySelectorAll(".labels a[data-label]"));
    for (const entry of entries) {
      const link = links.find((a) => a.dataset.label === entry.label);
      if (link) link.querySelector(".count").textContent = `${entry.reviewed}/${entry.count}`;
    }
  }

  function update(row) {
    const card = document.querySelector(`#gallery .card[data-row="${row.row}"]`);
    if (!card) return;
    card.dataset.decisionId = row.decision_id || "";
    card.classList.remove("open", "accepted", "corrected", "skipped");
    card.classList.add(row.decision || "open");
    card.querySelector(".pred .label").textContent = row.label;
    card.querySelector(".badge").textContent = row.decision || "";
    card.querySelector(".was").textContent = row.decision === "corrected" ? "was " + row.predicted : "";
  }

  function current() {
    return document.activeElement && document.activeElement.classList.contains("card")
      ? document.activeElement
      : null;
  }

  function move(step) {
    const all = cards();
    if (!all.length) return;
    const at = all.indexOf(current());
    const next = at < 0 ? 0 : Math.min(all.length - 1, Math.max(0, at + step));
    all[next].focus();
  }

  async function decide(card, action, label) {
    const row = Number(card.dataset.row);
    const base = card.dataset.decisionId ? Number(card.dataset.decisionId) : null;
    try {
      const data = await post("/api/decide", { action, rows: [row], label, base: [base], view });
      data.rows.forEach(update);
      say(`${action === "correct" ? "corrected to " + label : action + "ed"} (#${data.id})`);
      move(1);
    } catch (err) {
      say(err.message, true);
    }
  }

  async function undo() {
    try {
      const data = await post("/api/undo", {});
      data.rows.forEach(update);
      const first = document.querySelector(`#gallery .card[data-row="${data.rows[0] && data.rows[0].row}"]`);
      if (first) first.focus();
      say(`undone (#${data.id})`);
    } catch (err) {
      say(err.message, true);
    }
  }

  const typed = document.getElementById("typed");
  let typingFor = null;
  function askLabel(card) {
    typingFor = card;
    typed.hidden = false;
    typed.elements.label.value = "";
    typed.elements.label.focus();
  }
  typed.addEventListener("submit", (event) => {
    event.preventDefault();
    const label = typed.elements.label.value.trim();
    const card = typingFor;
    typed.hidden = true;
    typingFor = null;
    if (card && label) {
      card.focus();
      decide(card, "correct", label);
    }
  });
  typed.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      typed.hidden = true;
      if (typingFor) typingFor.focus();
      typingFor = null;
    }
  });

  function topLabel(card, n) {
    const buttons = card.querySelectorAll(".top button");
    return buttons[n - 1] ? buttons[n - 1].dataset.label : null;
  }

  function go(id) {
    const link = document.getElementById(id);
    if (link) window.location.href = link.href;
  }

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("form") || event.ctrlKey || event.metaKey || event.altKey) return;
    const card = current();
    const key = event.key;
    if (key === "ArrowRight" || key === "j") move(1);
    else if (key === "ArrowLeft" || key === "k") move(-1);
    else if (key === "n") go("next");
    else if (key === "p") go("prev");
    else if (key === "u" || key === "z") undo();
    else if (!card) {
      if (["a", "Enter", "s", "c"].includes(key) || /^[1-9]$/.test(key)) move(0);
      else return;
    } else if (key === "a" || key === "Enter") decide(card, "accept");
    else if (key === "s") decide(card, "skip");
    else if (key === "c") askLabel(card);
    else if (key === "o") window.open(`/image/${card.dataset.row}`, "_blank", "noopener");
    else if (/^[1-9]$/.test(key)) {
      const label = topLabel(card, Number(key));
      if (label) decide(card, "correct", label);
    } else return;
    event.preventDefault();
  });

  document.getElementById("gallery").addEventListener("click", (event) => {
    const button = event.target.closest(".top button");
    const card = event.target.closest(".card");
    if (button && card) decide(card, "correct", button.dataset.label);
  });

  document.getElementById("bulk").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const threshold = Number(form.elements.threshold.value);
    try {
      const data = await post("/api/bulk-accept", { label: form.elements.label.value, threshold });
      say(`accepted ${data.accepted} images`);
      if (data.accepted) setTimeout(() => window.location.reload(), 300);
    } catch (err) {
      say(err.message, true);
    }
  });

  document.getElementById("export").addEventListener("submit", async (event) => {
    event.preventDefault();
    const kind = event.submitter ? event.submitter.value : "csv";
    try {
      const data = await post("/api/export", { kind, mode: event.target.elements.mode.value });
      say(`wrote ${data.path}`);
    } catch (err) {
      say(err.message, true);
    }
  });

  document.getElementById("refit").addEventListener("submit", async (event) => {
    event.preventDefault();
    say("refitting (embedding the images the first time)...");
    try {
      const data = await post("/api/refit", { method: event.target.elements.method.value });
      say(`${data.method} on ${data.support} images: ${data.disagree} disagreements`);
      const params = new URLSearchParams(window.location.search);
      params.set("sort", "probe");
      params.set("page", "1");
      setTimeout(() => (window.location.search = params.toString()), 500);
    } catch (err) {
      say(err.message, true);
    }
  });

  // Another tab decided something: the next time this tab is shown, it reloads its page.
  document.addEventListener("visibilitychange", async () => {
    if (document.visibilityState !== "visible" || lastSeen === null) return;
    const response = await fetch("/api/summary");
    const data = await response.json();
    if (data.summary.last_id !== lastSeen) window.location.reload();
  });

  // An image that cannot be shown (unreadable, outside the root) gets a plain placeholder.
  document.addEventListener(
    "error",
    (event) => {
      if (event.target.tagName === "IMG") event.target.classList.add("missing");
    },
    true,
  );

  fetch("/api/summary")
    .then((r) => r.json())
    .then((d) => (lastSeen = d.summary.last_id));
  const first = cards().find((c) => c.classList.contains("open")) || cards()[0];
  if (first) first.focus();
})();
