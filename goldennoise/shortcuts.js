() => {
  // GoldenNoise keyboard shortcuts. Loaded once through launch(js=...).
  // Workbench: 1-9 toggle seeds 1-9, 0 toggles seed 10, Enter submits, s skips, u undoes,
  //            a / n tick all / none, f or arrow keys open a larger view (Esc or f closes).
  // Pairwise:  1 or Left = left, 2 or Right = right, t = tie, b = both bad, s skip, u undo.
  // Shortcuts are off while typing in a text field and while a modifier key is held.
  if (window.__goldennoiseShortcuts) return;
  window.__goldennoiseShortcuts = true;

  const shown = (id) => {
    const el = document.getElementById(id);
    return el !== null && el.offsetParent !== null;
  };
  const press = (id) => {
    const root = document.getElementById(id);
    const button = root && (root.tagName === "BUTTON" ? root : root.querySelector("button"));
    if (button && !button.disabled) button.click();
    return Boolean(button);
  };
  const boxes = () => Array.from(document.querySelectorAll("#gn-golden input[type=checkbox]"));
  // Tick every seed (true) or none (false); also used by the All / None buttons.
  const tick = (golden) => boxes().forEach((b) => { if (b.checked !== golden) b.click(); });
  window.goldennoise = { tick };
  const previewOpen = () =>
    document.querySelector('#gn-gallery [aria-label="detailed view of selected image"]') !== null;
  const closePreview = () => {
    const preview = document.querySelector('#gn-gallery [aria-label="detailed view of selected image"]');
    preview.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", code: "Escape", bubbles: true }));
  };
  const openPreview = () => {
    const first = document.querySelector("#gn-gallery .thumbnail-lg");
    if (first) first.click();
  };
  const typing = (el) =>
    el && (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
      (el.tagName === "INPUT" && !["checkbox", "radio", "button", "submit"].includes(el.type)));

  const workbench = (event) => {
    const key = event.key;
    if (previewOpen()) {
      if (key === "f") { closePreview(); return true; }
      return false; // the gallery handles arrows and Escape itself
    }
    if (/^[0-9]$/.test(key)) {
      const box = boxes()[key === "0" ? 9 : Number(key) - 1];
      if (box) box.click();
      return true;
    }
    if (key === "Enter") return event.target.tagName !== "BUTTON" && press("gn-submit");
    if (key === "a") { tick(true); return true; }
    if (key === "n") { tick(false); return true; }
    if (key === "s") return press("gn-skip");
    if (key === "u") return press("gn-undo");
    if (key === "f" || key === "ArrowRight" || key === "ArrowLeft") { openPreview(); return true; }
    return false;
  };

  const pairwise = (event) => {
    const actions = { "1": "gn-left", ArrowLeft: "gn-left", "2": "gn-right", ArrowRight: "gn-right",
      t: "gn-tie", b: "gn-both-bad", s: "gn-pair-skip", u: "gn-pair-undo" };
    return actions[event.key] ? press(actions[event.key]) : false;
  };

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    let handled = false;
    if (shown("gn-workbench")) handled = workbench(event);
    else if (shown("gn-pairwise")) handled = pairwise(event);
    if (handled) event.preventDefault();
  });
}
