set terminal pngcairo size 900,600
set output 'reports/plots/pareto.png'
set title 'PPL delta vs bits/weight (WikiText-2 test)'
set xlabel 'bits/weight (actual, compressed tensors)'
set ylabel 'PPL delta (%)'
set grid
set key top right
plot 'reports/plots/pareto.dat' index 0 using 1:2 with points pt 7 ps 1.2 title 'gpt2-mini', 'reports/plots/pareto.dat' index 1 using 1:2 with lines lw 2 title 'gpt2-mini Pareto front', 'reports/plots/pareto.dat' index 2 using 1:2 with points pt 7 ps 1.2 title 'llama-mini', 'reports/plots/pareto.dat' index 3 using 1:2 with lines lw 2 title 'llama-mini Pareto front'
set terminal svg size 900,600
set output 'reports/plots/pareto.svg'
set title 'PPL delta vs bits/weight (WikiText-2 test)'
set xlabel 'bits/weight (actual, compressed tensors)'
set ylabel 'PPL delta (%)'
set grid
set key top right
plot 'reports/plots/pareto.dat' index 0 using 1:2 with points pt 7 ps 1.2 title 'gpt2-mini', 'reports/plots/pareto.dat' index 1 using 1:2 with lines lw 2 title 'gpt2-mini Pareto front', 'reports/plots/pareto.dat' index 2 using 1:2 with points pt 7 ps 1.2 title 'llama-mini', 'reports/plots/pareto.dat' index 3 using 1:2 with lines lw 2 title 'llama-mini Pareto front'
