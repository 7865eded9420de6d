if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo size 1000,600 } else { set terminal png size 1000,600 }
set datafile missing '?'
set grid ytics
set output 'docs/charts/speedup.png'
set title 'CPU-bound cell: speedup against workers (2 cores)'
set xlabel 'workers'
set ylabel 'speedup over 1 worker'
set xrange [0.5:4.5]
set yrange [0:*]
set xtics 1 norotate
set key bottom right
plot for [i=2:7] 'docs/charts/speedup.dat' using 1:i with linespoints lw 2 title columnheader(i), (x < 2 ? x : 2) with lines dt 2 lc 'black' title 'ideal'
set xrange [*:*]
set yrange [*:*]
set xtics autofreq
set output 'docs/charts/ns_per_item.png'
set title 'Trivial items (a + b): nanoseconds per item, by system'
set ylabel 'ns per item (log)'
set logscale y
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.7 border -1
set xtics rotate by 30 right
set key top left
unset xlabel
plot 'docs/charts/trivial.dat' using 2:3:4:xtic(1) title 'n=10^6', 'docs/charts/trivial.dat' using 5:6:7 title 'n=10^7'
unset logscale y
set output 'docs/charts/latency.png'
set title 'A map of one item on a warm pool: latency, by system'
set ylabel 'microseconds (log)'
set logscale y
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.7 border -1
set xtics rotate by 30 right
set key top left
unset xlabel
plot 'docs/charts/latency.dat' using 2:3:4:xtic(1) title 'n=1'
unset logscale y
set output 'docs/charts/cancel.png'
set title 'Cancelling a long map: microseconds until the wait returns'
set ylabel 'microseconds (log)'
set logscale y
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.7 border -1
set xtics rotate by 30 right
set key top left
unset xlabel
plot 'docs/charts/cancel.dat' using 2:3:4:xtic(1) title 'item=1ms', 'docs/charts/cancel.dat' using 5:6:7 title 'item=10us'
unset logscale y
set output 'docs/charts/open_close.png'
set title 'Opening and closing a pool, by workers'
set ylabel 'milliseconds (log)'
set logscale y
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.7 border -1
set xtics rotate by 30 right
set key top left
unset xlabel
plot 'docs/charts/open.dat' using 2:3:4:xtic(1) title 'workers=1', 'docs/charts/open.dat' using 5:6:7 title 'workers=2', 'docs/charts/open.dat' using 8:9:10 title 'workers=8', 'docs/charts/open.dat' using 11:12:13 title 'workers=32'
unset logscale y
