/**
 * Just enough of Prometheus for the metrics e2e test (no promtool or YAML parser here): the alert
 * rules of a rules file, the metric names a PromQL expression reads, and the metric names a
 * scrape exposes.
 */

export interface AlertRule {
  alert: string;
  expr: string;
  /** The rule's own lines, for checks of its labels and annotations. */
  text: string;
}

/** The `- alert:` rules of a rules file, with `expr` read as a plain, quoted or block (`|`, `>`) scalar. */
export function alertRules(yaml: string): AlertRule[] {
  const lines = yaml.split('\n');
  const rules: AlertRule[] = [];
  let current: AlertRule | null = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const alert = /^\s*-\s*alert:\s*(\S+)\s*$/.exec(line);
    if (alert) {
      current = { alert: alert[1]!, expr: '', text: '' };
      rules.push(current);
    }
    if (current) current.text += `${line}\n`;
    const expr = /^(\s*)expr:\s*(.*)$/.exec(line);
    if (!expr || !current) continue;
    let value = expr[2]!.trim();
    if (/^[|>][-+]?$/.test(value)) {
      const indent = expr[1]!.length;
      const body: string[] = [];
      while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || lines[i + 1]!.search(/\S/) > indent)) {
        body.push(lines[++i]!.trim());
        current.text += `${lines[i]}\n`;
      }
      value = body.join(' ').trim();
    } else if (/^(["']).*\1$/.test(value)) {
      value = value.slice(1, -1);
    }
    current.expr = value;
  }
  return rules;
}

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

/** The metric names an expression selects: identifiers that are not functions, keywords, label names or strings. */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    if (/^\s*\(/.test(bare.slice(m.index! + word.length))) continue; // a function or an aggregation
    if (PROMQL_WORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names].sort();
}

/** Every series name a scrape exposes: each `# TYPE` family, with `_bucket`/`_sum`/`_count` for histograms and summaries. */
export function exposedNames(scrape: string): Set<string> {
  const names = new Set<string>();
  for (const m of scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    names.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
  }
  return names;
}

/** The value of one sample line (`name{labels}`, labels in the order the exporter writes them). */
export function sampleValue(scrape: string, series: string): number | undefined {
  const line = scrape.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
