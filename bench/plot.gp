# SPDX-License-Identifier: MIT
# plot.gp - charts of percpu-bench results.
#
# Run by percpu-bench --plots DIR as:  gnuplot -e "dir='DIR'; ncpu=N" plot.gp
# Reads DIR/{inc,ops,list,alloc,clients,scale,units,mem}.dat (written by the benchmark) and
# writes DIR/{inc,ops,list,alloc,clients,scale,units,mem}.svg, plus .png when gnuplot has
# pngcairo.
# Bars are medians; error bars span min..max over the repetitions.

if (!exists("dir")) dir = "."
if (!exists("ncpu")) ncpu = 2
fmts = "svg"
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) fmts = "svg png"
tN = sprintf("T=%d (one pinned thread per CPU)", ncpu)

set datafile missing "-"
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border rgb "#444444"
set boxwidth 0.9
set grid ytics lc rgb "#dddddd"
set key top left
set xtics nomirror
set ytics nomirror
set border 3

do for [fmt in fmts] {
    if (fmt eq "svg") {
        set terminal svg size 860,460 dynamic noenhanced font "sans,12" background rgb "white"
    } else {
        set terminal pngcairo size 860,460 noenhanced font "sans,10" background rgb "white"
    }

    set output dir."/inc.".fmt
    set title "Counter increment: ns per op per thread (lower is better)"
    set ylabel "ns per increment"
    unset logscale y
    set yrange [0:*]
    plot dir."/inc.dat" using 2:3:4:xtic(1) title "T=1" lc rgb "#3182bd", \
         "" using 5:6:7 title tN lc rgb "#e6550d"

    set output dir."/ops.".fmt
    set title "This-CPU operations: ns per op per thread (lower is better)"
    set ylabel "ns per operation"
    unset logscale y
    set yrange [0:*]
    plot dir."/ops.dat" using 2:3:4:xtic(1) title "T=1" lc rgb "#3182bd", \
         "" using 5:6:7 title tN lc rgb "#e6550d"

    set output dir."/list.".fmt
    set title "Free list: ns per pop+push pair per thread (lower is better; log scale)"
    set ylabel "ns per pop+push"
    set logscale y
    set yrange [*:*]
    plot dir."/list.dat" using 2:3:4:xtic(1) title "T=1" lc rgb "#3182bd", \
         "" using 5:6:7 title tN lc rgb "#e6550d"
    unset logscale y

    set output dir."/alloc.".fmt
    set title "Allocation + free: ns per pair per thread (lower is better; log scale)"
    set ylabel "ns per alloc+free"
    set logscale y
    set yrange [*:*]
    plot dir."/alloc.dat" using 2:3:4:xtic(1) title "T=1" lc rgb "#3182bd", \
         "" using 5:6:7 title tN lc rgb "#e6550d"
    unset logscale y

    set output dir."/clients.".fmt
    set title "Counters, refs, rw semaphore: ns per op per thread (lower is better; log scale)"
    set ylabel "ns per operation"
    set logscale y
    set yrange [*:*]
    plot dir."/clients.dat" using 2:3:4:xtic(1) title "T=1" lc rgb "#3182bd", \
         "" using 5:6:7 title tN lc rgb "#e6550d"
    unset logscale y

    set output dir."/scale.".fmt
    set title "Alloc+free of 8 bytes with many live objects (T=1, random replacement)"
    set xlabel "live 8-byte objects"
    set ylabel "ns per pair"
    set logscale x
    set yrange [0:*]
    set xrange [500:2000000]
    plot dir."/scale.dat" using 1:2:3:4 with yerrorlines lw 2 pt 7 lc rgb "#3182bd" title "percpu"
    unset logscale x
    unset xlabel
    set xrange [*:*]

    set output dir."/units.".fmt
    set title "Cost vs configured units (2 touched): each figure / its 2-unit figure"
    set xlabel "units configured (nr_cpus)"
    set ylabel "x the 2-unit figure (1 = no cost of unused units)"
    set logscale x 2
    set xrange [1.5:6000]
    set yrange [0:*]
    set style data linespoints
    plot dir."/units.dat" using 1:2 lw 2 pt 7 title "alloc+free 8 B", \
         "" using 1:3 lw 2 pt 5 title "free half a unit", \
         "" using 1:4 lw 2 pt 9 title "alloc, 1M live", \
         "" using 1:5 lw 2 pt 11 title "free, 1M live", \
         "" using 1:7 lw 2 pt 13 title "resident", \
         "" using 1:6 lw 2 pt 3 dt 2 title "maps per chunk (absolute)"
    unset logscale x
    unset xlabel
    set xrange [*:*]
    set style data histogram

    set output dir."/mem.".fmt
    set title sprintf("Resident memory for 1M 8-byte objects written on %d units", ncpu)
    set ylabel "kB resident"
    set style data boxes
    set boxwidth 0.6
    set yrange [0:*]
    plot dir."/mem.dat" using 0:2:xtic(1) with boxes lc rgb "#31a354" notitle, \
         "" using 0:2:(sprintf("%.0f kB", $2)) with labels offset 0,1 notitle
    set boxwidth 0.9
    set style data histogram
}
