// The page's own display settings, saved per person (localStorage): text size and a high-contrast theme. "System"
// follows the browser (prefers-contrast); reduced motion always follows prefers-reduced-motion (styles.css).

const SIZES = { small: "87.5%", normal: "100%", large: "125%", larger: "150%" };
const DEFAULTS = { textSize: "normal", contrast: "system" };

export class DisplaySettings {
  constructor(form) {
    this.form = form;
    this.key = null;
    this.values = { ...DEFAULTS };
    form.addEventListener("change", () => {
      this.values = { textSize: form.elements["text-size"].value, contrast: form.elements.contrast.value };
      if (this.key) localStorage.setItem(this.key, JSON.stringify(this.values));
      this.apply();
    });
    this.apply();
  }

  /** The person's own settings (each demo user of each tenant keeps theirs on this browser). */
  load(tenant, user) {
    this.key = `openmeet-settings:${tenant}:${user}`;
    try {
      this.values = { ...DEFAULTS, ...JSON.parse(localStorage.getItem(this.key) ?? "{}") };
    } catch {
      this.values = { ...DEFAULTS };
    }
    this.apply();
  }

  apply() {
    const root = document.documentElement;
    root.style.fontSize = SIZES[this.values.textSize] ?? SIZES.normal;
    if (this.values.contrast === "system") delete root.dataset.contrast;
    else root.dataset.contrast = this.values.contrast;
    this.form.elements["text-size"].value = this.values.textSize;
    this.form.elements.contrast.value = this.values.contrast;
  }
}
