import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { loadReport } from "../../../drills/report-files.ts";
import { renderReportHtml } from "../../../drills/report-html.ts";

/** `stayup report <file.json>`: renders a saved drill report as standalone HTML again. */
export function register(program: Command): void {
  program
    .command("report")
    .description("render a saved drill report (the .json next to its HTML) as standalone HTML again")
    .argument("<file.json>", "a drill's JSON report")
    .option("-o, --out <file.html>", "where to write the HTML (default: the JSON's name with .html)")
    .action((file: string, opts: { out?: string }) => {
      const report = loadReport(file);
      const out = opts.out ?? `${file.replace(/\.json$/i, "")}.html`;
      writeFileSync(out, renderReportHtml(report));
      console.log(out);
    });
}
