# The report of loadtests/run: reads its CSV (one row per measured cell) and
# prints the Markdown: the means over rounds per scenario and contender, the
# targets of issue #14 as ratios within this run, and every cell. Writes one
# gnuplot script and data file per scenario next to it (PREFIX-SCENARIO.gp),
# which the harness turns into PNGs.
#   awk -F, -v caveat=.. -v commit=.. -v settings=.. -v date=.. -v plots=PREFIX -f report.awk RUN.csv
NR == 1 { next }
{
  scn = $1; kind = $2; who = $4
  k = scn SUBSEP kind SUBSEP who
  if (!(k in n)) { order[++keys] = k; n[k] = 0 }
  rows[++nrows] = $0
  n[k]++
  if ($7 != "") { rps[k] += $7; nrps[k]++ }
  if ($8 != "") { p50[k] += $8; np50[k]++ }
  if ($9 != "") { p99[k] += $9; np99[k]++ }
  err[k] += $10; req[k] += $6; conns[k] = $5
  if ($11 != "") { cpu[k] += $11; ncpu[k]++ }
  if ($12 != "") { bcpu[k] += $12; nbcpu[k]++ }
  if ($13 != "") rss[k] = $13
  if ($14 != "" && $14 > peak[k]) peak[k] = $14
  if ($15 != "") { ups[k] += $15; nups[k]++ }
  if ($16 != "ok" && (note[k] == "" || note[k] == "ok")) note[k] = $16
  if (note[k] == "") note[k] = $16
}
function mean(sum, cnt) { return cnt > 0 ? sum / cnt : "" }
function m(scn, kind, who, what,    k) {
  k = scn SUBSEP kind SUBSEP who
  if (!(k in n)) return ""
  # A cell with errors or no answers does not count towards a target.
  if (what != "ok" && note[k] != "ok") return ""
  if (what == "rps") return mean(rps[k], nrps[k])
  if (what == "p50") return mean(p50[k], np50[k])
  if (what == "p99") return mean(p99[k], np99[k])
  if (what == "cpu") return mean(cpu[k], ncpu[k])
  if (what == "bcpu") return mean(bcpu[k], nbcpu[k])
  if (what == "ups") return mean(ups[k], nups[k])
  if (what == "peak") return peak[k]
  if (what == "ok") return (note[k] == "ok")
}
function fmt(v, d) { return v == "" ? "-" : sprintf("%." d "f", v) }
function target(name, got, goal, pass, unit) {
  if (got == "" || got == "-") { printf "| %s | not measured | %s | - |\n", name, goal; return }
  printf "| %s | %s%s | %s | %s |\n", name, got, unit, goal, pass ? "met" : "**missed**"
}
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "" : a / b }
END {
  print "# rpcgate benchmark, " date
  print ""
  print "Commit " commit "; " settings "."
  print ""
  print "> " caveat
  print ""
  print "## Means over rounds"
  print ""
  print "| scenario | backend | contender | req/s | p50 us | p99 us | errors | CPU us/req | backend CPU us/req | rpcgate RSS MiB (peak) | upstream calls per call | note |"
  print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for (i = 1; i <= keys; i++) {
    k = order[i]; split(k, p, SUBSEP)
    r = (rss[k] == "") ? "-" : rss[k] " (" peak[k] ")"
    printf "| %s | %s | %s | %s | %s | %s | %d | %s | %s | %s | %s | %s |\n", p[1], p[2], p[3],
      fmt(mean(rps[k], nrps[k]), 0), fmt(mean(p50[k], np50[k]), 0), fmt(mean(p99[k], np99[k]), 0), err[k],
      fmt(mean(cpu[k], ncpu[k]), 1), fmt(mean(bcpu[k], nbcpu[k]), 1), r, fmt(mean(ups[k], nups[k]), 3), note[k]
    f = plots "-" p[1] ".dat"
    if (!(p[1] in plotted)) { plotted[p[1]] = 1; plot_order[++nplots] = p[1] }
    if (nrps[k] > 0) printf "%s %.0f %.0f\n", p[3], mean(rps[k], nrps[k]), mean(p99[k], np99[k]) > f
  }
  print ""
  print "## Targets (issue #14), ratios within this run"
  print ""
  print "| target | measured | goal | |"
  print "|---|---|---|---|"
  a = ratio(m("distinct", "fixed", "rpcgate", "rps"), m("distinct", "fixed", "nginx", "rps"))
  target("distinct requests (fixed backend): rpcgate / nginx req/s", fmt(a, 2), ">= 1.0x", a >= 1.0, "x")
  a = m("distinct", "fixed", "rpcgate", "p99"); b = m("distinct", "fixed", "nginx", "p99")
  target("distinct requests (fixed backend): p99 rpcgate vs nginx", (a == "" || b == "") ? "" : fmt(a, 0) " vs " fmt(b, 0), "no worse", a <= b, " us")
  a = ratio(m("distinct", "fixed", "rpcgate", "cpu"), m("distinct", "fixed", "direct", "cpu"))
  target("CPU per forwarded request: rpcgate / the fixed backend", fmt(a, 2), "<= 1.5x", a != "" && a <= 1.5, "x")
  a = ratio(m("same", "anvil", "rpcgate", "rps"), m("same", "anvil", "nginx", "rps"))
  target("identical requests from many clients: rpcgate / nginx req/s", fmt(a, 2), ">= 1.3x", a >= 1.3, "x")
  a = ratio(m("cachehit", "anvil", "rpcgate", "rps"), m("cachehit", "anvil", "limit", "rps"))
  target("cache hit: rpcgate / minimal hyper server req/s", fmt(a, 2), ">= 0.85x", a >= 0.85, "x")
  a = m("latency", "fixed", "rpcgate", "p50"); b = m("latency", "fixed", "direct", "p50")
  d = (a == "" || b == "") ? "" : a - b
  target("added latency at a fixed rate vs direct: p50", fmt(d, 0), "<= 50 us", d != "" && d <= 50, " us")
  a = m("latency", "fixed", "rpcgate", "p99"); b = m("latency", "fixed", "direct", "p99")
  d = (a == "" || b == "") ? "" : a - b
  target("added latency at a fixed rate vs direct: p99", fmt(d, 0), "<= 500 us", d != "" && d <= 500, " us")
  a = m("dapp", "anvil", "rpcgate", "ups")
  target("DApp mix on anvil after warm-up: upstream calls per client call", fmt(a, 3), "<= 0.15", a != "" && a <= 0.15, "")
  a = m("memory", "fixed", "rpcgate", "peak")
  k = "memory" SUBSEP "fixed" SUBSEP "rpcgate"
  target("rpcgate's peak RSS with " conns[k] " keep-alive connections in flight", fmt(a, 1), "<= 64 MiB", a != "" && a <= 64, " MiB")
  print ""
  print "A row whose note is not `ok` had errors (socket errors, non-200 answers or JSON-RPC errors) or no answers at all: its figures do not count."
  print ""
  print "## Every cell"
  print ""
  print "| scenario | backend | round | contender | connections | requests | req/s | p50 us | p99 us | errors | CPU us/req | backend CPU us/req | RSS MiB | peak RSS MiB | upstream/call | note |"
  print "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for (i = 1; i <= nrows; i++) { line = rows[i]; gsub(",", " | ", line); print "| " line " |" }
  for (i = 1; i <= nplots; i++) {
    s = plot_order[i]; f = plots "-" s
    if (s == "ws") continue
    close(f ".dat")
    print "set terminal pngcairo size 1000,420 font 'sans,10'" > (f ".gp")
    print "set output '" f ".png'" > (f ".gp")
    print "set multiplot layout 1,2 title '" s " (" date "; means over rounds; shared 2-core machine)'" > (f ".gp")
    print "set style fill solid 0.8; set boxwidth 0.6; set grid ytics; set yrange [0:*]; unset key" > (f ".gp")
    print "set title 'requests per second'" > (f ".gp")
    print "plot '" f ".dat' using 0:2:xtic(1) with boxes lc rgb '#3070b0'" > (f ".gp")
    print "set title 'p99 latency (us)'" > (f ".gp")
    print "plot '" f ".dat' using 0:3:xtic(1) with boxes lc rgb '#c05030'" > (f ".gp")
    print "unset multiplot" > (f ".gp")
    close(f ".gp")
  }
}
