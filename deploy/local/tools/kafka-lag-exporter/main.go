// Command kafka-lag-exporter serves, for Prometheus, the broker-side view of
// Kafka consumer groups: for every group, the committed offset and the lag
// (partition end offset minus committed offset) per topic and partition, as
// the brokers store them, independent of whether the consumer is alive.
//
// Why our own: the ready-made Kafka exporters are not served by the Go module
// proxy this project builds from, and the broker's JMX has no per-group lag.
// This is a small admin client (franz-go's kadm) answering each scrape with
// fresh ListGroups, DescribeGroups, OffsetFetch and ListOffsets requests.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	descUp = prometheus.NewDesc("kafka_lag_exporter_up",
		"1 if the last scrape reached the brokers and read every group, else 0.", nil, nil)
	descDuration = prometheus.NewDesc("kafka_lag_exporter_scrape_duration_seconds",
		"Time the last scrape spent asking the brokers.", nil, nil)
	descBrokers = prometheus.NewDesc("kafka_brokers",
		"Brokers in the cluster metadata.", nil, nil)
	descPartitions = prometheus.NewDesc("kafka_topic_partitions",
		"Partitions of a topic.", []string{"topic"}, nil)
	descEnd = prometheus.NewDesc("kafka_topic_partition_current_offset",
		"End offset (high watermark) of a partition.", []string{"topic", "partition"}, nil)
	descCommitted = prometheus.NewDesc("kafka_consumergroup_current_offset",
		"Offset a consumer group has committed on a partition.", []string{"consumergroup", "topic", "partition"}, nil)
	descLag = prometheus.NewDesc("kafka_consumergroup_lag",
		"End offset minus the group's committed offset, as the brokers see it.", []string{"consumergroup", "topic", "partition"}, nil)
	descMembers = prometheus.NewDesc("kafka_consumergroup_members",
		"Members of a consumer group (0 when no consumer is connected).", []string{"consumergroup"}, nil)
)

type lagCollector struct {
	adm     *kadm.Client
	timeout time.Duration
	log     *slog.Logger
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descDuration, descBrokers, descPartitions, descEnd, descCommitted, descLag, descMembers} {
		ch <- d
	}
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	err := c.collect(ctx, ch)
	up := 1.0
	if err != nil {
		up = 0
		c.log.Warn("scrape failed", "error", err)
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descDuration, prometheus.GaugeValue, time.Since(start).Seconds())
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func (c *lagCollector) collect(ctx context.Context, ch chan<- prometheus.Metric) error {
	meta, err := c.adm.Metadata(ctx)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	gauge(ch, descBrokers, float64(len(meta.Brokers)))

	var topics []string
	for name, t := range meta.Topics {
		if t.IsInternal || t.Err != nil {
			continue
		}
		topics = append(topics, name)
		gauge(ch, descPartitions, float64(len(t.Partitions)), name)
	}
	if len(topics) > 0 {
		ends, err := c.adm.ListEndOffsets(ctx, topics...)
		if err != nil {
			return fmt.Errorf("list end offsets: %w", err)
		}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil {
				gauge(ch, descEnd, float64(o.Offset), o.Topic, strconv.Itoa(int(o.Partition)))
			}
		})
	}

	listed, err := c.adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	groups := listed.Groups()
	if len(groups) == 0 {
		return nil
	}
	lags, err := c.adm.Lag(ctx, groups...)
	if err != nil {
		return fmt.Errorf("group lag: %w", err)
	}
	var failed []string
	for _, g := range lags {
		if g.Error() != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", g.Group, g.Error()))
			continue
		}
		gauge(ch, descMembers, float64(len(g.Members)), g.Group)
		for _, l := range g.Lag.Sorted() {
			if l.Err != nil || strings.HasPrefix(l.Topic, "__") {
				continue
			}
			p := strconv.Itoa(int(l.Partition))
			gauge(ch, descCommitted, float64(l.Commit.At), g.Group, l.Topic, p)
			gauge(ch, descLag, float64(l.Lag), g.Group, l.Topic, p)
		}
	}
	if len(failed) > 0 {
		return errors.New("groups not read: " + strings.Join(failed, "; "))
	}
	return nil
}

func main() {
	brokers := flag.String("kafka.server", "127.0.0.1:9092", "comma-separated bootstrap brokers")
	listen := flag.String("web.listen-address", "127.0.0.1:9308", "address of the /metrics endpoint")
	timeout := flag.Duration("scrape.timeout", 4*time.Second, "deadline of one scrape's requests to the brokers")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *timeout <= 0 {
		log.Error("bad -scrape.timeout: must be positive", "value", timeout.String())
		os.Exit(2)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*brokers, ",")...), kgo.ClientID("glasshouse-kafka-lag-exporter"))
	if err != nil {
		log.Error("bad -kafka.server", "value", *brokers, "error", err)
		os.Exit(2)
	}
	defer cl.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(&lagCollector{adm: kadm.NewClient(cl), timeout: *timeout, log: log})
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	log.Info("serving", "listen", *listen, "brokers", *brokers)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}
