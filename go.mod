module wsgo

go 1.26.8
