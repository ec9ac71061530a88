module github.com/strata-data/strata

go 1.26
