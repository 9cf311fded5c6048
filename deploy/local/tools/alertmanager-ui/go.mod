module glasshouse.local/tools/alertmanager-ui

go 1.26.8

require github.com/prometheus/alertmanager v0.24.0

require (
	github.com/shurcooL/httpfs v0.0.0-20190707220628-8d4bc4ba7749 // indirect
	github.com/shurcooL/vfsgen v0.0.0-20200824052919-0d455de96546 // indirect
)
