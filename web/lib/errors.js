/** The library's errors: one line each, saying what is wrong. */

/** Bad input: an argument, a file or a bundle. The message is one line that says what to do. */
export class VaeDigitsError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "VaeDigitsError"; // spelled out: a minifier renames classes
  }
}

/** A bundle that is missing, malformed, tampered with or not loadable. */
export class BundleError extends VaeDigitsError {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "BundleError";
  }
}

/** @param {unknown} error */
export function errorName(error) {
  return error instanceof Error ? error.name : typeof error;
}

/** @param {unknown} error */
export function firstLine(error) {
  const text = String(error instanceof Error ? error.message : error).trim();
  return (text.split("\n")[0] || errorName(error)).slice(0, 200);
}

/**
 * A value as Python's repr() writes it, so that a message names a value as vae_runtime's does.
 * @param {unknown} value
 * @returns {string}
 */
export function pyRepr(value) {
  if (value === null || value === undefined) return "None";
  if (value === true || value === false) return value ? "True" : "False";
  if (typeof value === "string") {
    const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
    const escaped = Array.from(value, (char) => {
      if (char === "\\" || char === quote) return `\\${char}`;
      const special = { "\n": "\\n", "\r": "\\r", "\t": "\\t" }[char];
      if (special) return special;
      const code = char.codePointAt(0) ?? 0;
      return code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, "0")}` : char;
    });
    return `${quote}${escaped.join("")}${quote}`;
  }
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(", ")}]`;
  if (typeof value === "object") {
    const items = Object.entries(value).map(([key, item]) => `${pyRepr(key)}: ${pyRepr(item)}`);
    return `{${items.join(", ")}}`;
  }
  return String(value);
}
