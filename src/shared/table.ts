/** Rows as aligned columns (two spaces apart), the first row being the header. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length))) ?? [];
  return rows.map((row) => row.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join("  ")).join("\n");
}
