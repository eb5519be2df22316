module qlabbench

go 1.19
