/**
 * Where a bracket left open in a description most likely is. A parser notices a missing `}` only
 * at the end of the file (it reads on, taking the rest of the file as inside the bracket), so its
 * error names the last line. In a formatted file what is inside a bracket opened on a line is
 * indented deeper than that line: the first line that is not, and does not close it, shows the
 * bracket that was left open. Strings, template literals and comments are skipped.
 */
export function unclosedBracket(
  source: string,
): { line: number; column: number; bracket: string; noticedAtLine: number } | undefined {
  const closers: Record<string, string> = { "{": "}", "[": "]", "(": ")" };
  const open: { bracket: string; line: number; column: number; indent: number }[] = [];
  const lines = source.split("\n");
  let inBlockComment = false;
  for (let n = 0; n < lines.length; n++) {
    const text = lines[n] as string;
    const indent = text.length - text.trimStart().length;
    const first = text.trimStart()[0];
    if (!inBlockComment && first !== undefined && !text.trimStart().startsWith("//")) {
      // A line at or left of a still-open bracket's line, not closing it: that bracket was never closed.
      const top = open[open.length - 1];
      if (top && top.line < n + 1 && indent <= top.indent && first !== closers[top.bracket]) {
        return { line: top.line, column: top.column, bracket: top.bracket, noticedAtLine: n + 1 };
      }
    }
    let quote: string | undefined;
    for (let i = 0; i < text.length; i++) {
      const c = text[i] as string;
      if (inBlockComment) {
        if (c === "*" && text[i + 1] === "/") {
          inBlockComment = false;
          i++;
        }
      } else if (quote) {
        if (c === "\\") i++;
        else if (c === quote) quote = undefined;
      } else if (c === "/" && text[i + 1] === "/") break;
      else if (c === "/" && text[i + 1] === "*") {
        inBlockComment = true;
        i++;
      } else if (c === '"' || c === "'" || c === "`") quote = c;
      else if (c in closers) open.push({ bracket: c, line: n + 1, column: i + 1, indent });
      else if (c === "}" || c === "]" || c === ")") open.pop();
    }
  }
  return undefined;
}
