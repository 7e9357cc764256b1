// SQL syntax highlighting for the editor: a small tokenizer, no dependencies.
// The textarea holds the text; a <pre> underneath shows the same text with coloured tokens.
"use strict";
const SQL_KEYWORDS = new Set(("select from where group by order having limit offset with as and or not in is null like ilike " +
  "between case when then else end join left right full inner outer cross on using union all distinct " +
  "explain analyze describe show summarize tables asc desc nulls first last over partition window rows range " +
  "interval true false cast qualify filter exists any some").split(" "));
const SQL_FUNCTIONS = new Set(("count sum avg min max approx_count_distinct date_trunc date_part strftime epoch " +
  "extract coalesce round lower upper length regexp_matches regexp_extract row_number rank dense_rank lag lead " +
  "first last median quantile_cont arg_max arg_min string_agg list time_bucket now current_date").split(" "));

function escapeHtml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function highlightSql(text) {
  const token = /(--[^\n]*|\/\*[\s\S]*?\*\/)|('(?:[^']|'')*'?)|("(?:[^"]|"")*"?)|(\b\d+(?:\.\d+)?\b)|(:[A-Za-z_]\w*|\$\w+)|([A-Za-z_][A-Za-z0-9_]*)/g;
  let out = "", last = 0, m;
  while ((m = token.exec(text)) !== null) {
    out += escapeHtml(text.slice(last, m.index));
    const word = m[0];
    let cls = null;
    if (m[1]) cls = "tok-com";
    else if (m[2]) cls = "tok-str";
    else if (m[4]) cls = "tok-num";
    else if (m[5]) cls = "tok-param";
    else if (m[6]) {
      const lower = word.toLowerCase();
      if (SQL_KEYWORDS.has(lower)) cls = "tok-kw";
      else if (SQL_FUNCTIONS.has(lower) && text[token.lastIndex] === "(") cls = "tok-fn";
    }
    out += cls ? `<span class="${cls}">${escapeHtml(word)}</span>` : escapeHtml(word);
    last = token.lastIndex;
  }
  // A trailing newline needs a character after it, or the <pre> is one line short of the textarea.
  return out + escapeHtml(text.slice(last)) + "\n";
}
