// pfs review: keyboard shortcuts and decision posts. No framework, nothing fetched from elsewhere.
(function () {
  "use strict";
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
  const typing = (el) => el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.isContentEditable);

  function listPage() {
    const rows = Array.from(document.querySelectorAll("#patients tbody tr.row"));
    let at = -1;
    const select = (i) => {
      if (!rows.length) return;
      at = Math.max(0, Math.min(rows.length - 1, i));
      rows.forEach((r, j) => r.classList.toggle("selected", j === at));
      rows[at].scrollIntoView({ block: "nearest" });
    };
    rows.forEach((r, i) => r.addEventListener("click", (e) => {
      if (e.target.tagName !== "A") { select(i); window.location.href = r.dataset.href; }
    }));
    document.addEventListener("keydown", (e) => {
      if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "j" || e.key === "ArrowDown") { select(at + 1); e.preventDefault(); }
      else if (e.key === "k" || e.key === "ArrowUp") { select(at - 1); e.preventDefault(); }
      else if (e.key === "Enter" && at >= 0) { window.location.href = rows[at].dataset.href; }
      else if (e.key === "n") { const a = document.getElementById("next-page"); if (a) a.click(); }
      else if (e.key === "p") { const a = document.getElementById("prev-page"); if (a) a.click(); }
    });
  }

  function patientPage() {
    const root = document.getElementById("patient");
    const pid = root.dataset.patientId;
    const status = document.getElementById("save-status");
    const go = (url) => { if (url) window.location.href = url; };

    async function post(decision) {
      decision.comment = document.getElementById("comment").value;
      decision.reviewer = meta("reviewer");
      status.textContent = "saving…";
      status.className = "";
      try {
        const resp = await fetch(`/api/patients/${encodeURIComponent(pid)}/review`, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": meta("csrf-token") },
          body: JSON.stringify(decision),
        });
        const data = await resp.json();
        if (!resp.ok) { status.textContent = data.error || `error ${resp.status}`; status.className = "error"; return; }
        status.textContent = `saved: ${data.status}` +
          (data.progressed ? ` (progression ${data.progression_date})` : ` (no progression, censored ${data.censor_date})`);
        status.className = "saved";
        const list = document.getElementById("reviews");
        const none = list.querySelector("li.none");
        if (none) none.remove();
        const li = document.createElement("li");
        li.textContent = `${data.reviewer}: ${data.status} (just now)`;
        list.appendChild(li);
        if (document.getElementById("advance").checked && root.dataset.next) {
          setTimeout(() => go(root.dataset.next), 350);
        }
      } catch (err) {
        status.textContent = "not saved: the server did not answer"; status.className = "error";
      }
    }

    const accept = document.getElementById("accept");
    const pick = (btn) => post({ decision: "date", progression_date: btn.dataset.date, chosen_source: btn.dataset.source });
    const setDate = () => {
      const d = document.getElementById("progression-date");
      if (!d.value) { d.focus(); return; }
      post({ decision: "date", progression_date: d.value, chosen_source: "reviewer" });
    };
    const noProgression = () => {
      const d = document.getElementById("censor-date");
      if (!d.value) { d.focus(); return; }
      post({ decision: "no_progression", censor_date: d.value });
    };
    accept.addEventListener("click", () => post({ decision: "accept" }));
    document.querySelectorAll("button.pick").forEach((b) => b.addEventListener("click", () => pick(b)));
    document.getElementById("set-date").addEventListener("click", setDate);
    document.getElementById("no-progression").addEventListener("click", noProgression);

    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { if (typing(e.target)) e.target.blur(); document.getElementById("help").hidden = true; return; }
      if (typing(e.target)) {
        if (e.key === "Enter" && e.target.id === "progression-date") { e.preventDefault(); setDate(); }
        if (e.key === "Enter" && e.target.id === "censor-date") { e.preventDefault(); noProgression(); }
        return;
      }
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const k = e.key;
      if (k === "a" && !accept.disabled) { e.preventDefault(); post({ decision: "accept" }); }
      else if (k === "j") go(root.dataset.next);
      else if (k === "k") go(root.dataset.previous);
      else if (k === "l") go(root.dataset.list);
      else if (k === "d") { e.preventDefault(); document.getElementById("progression-date").focus(); }
      else if (k === "x") { e.preventDefault(); document.getElementById("censor-date").focus(); }
      else if (k === "c") { e.preventDefault(); document.getElementById("comment").focus(); }
      else if (k === "?") { const h = document.getElementById("help"); h.hidden = !h.hidden; }
      else if (/^[1-9]$/.test(k)) {
        const b = document.querySelector(`button.pick[data-index="${k}"]`);
        if (b) { e.preventDefault(); pick(b); }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (document.getElementById("patient")) patientPage();
    else if (document.getElementById("patients")) listPage();
    document.body.dataset.ready = "1";  // the keys work from here on (tests wait for it)
  });
})();
