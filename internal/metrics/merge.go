package metrics

import (
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// merger adds up metric families from several processes, series by series
// (a series is a family's metric with one set of label values).
type merger struct {
	families map[string]*dto.MetricFamily
	series   map[string]map[string]*dto.Metric // family name -> series key -> its sum
}

func newMerger() *merger {
	return &merger{families: map[string]*dto.MetricFamily{}, series: map[string]map[string]*dto.Metric{}}
}

// add merges families in. Snapshots are added oldest process first, so
// that where a series is one process's own (a gauge labelled process, a
// summary) the newest process's value is kept. With cumulativeOnly, only
// counters and histograms are taken: what stays true of a process once it
// has exited.
func (m *merger) add(families []*dto.MetricFamily, cumulativeOnly bool) {
	for _, f := range families {
		typ := f.GetType()
		if cumulativeOnly && typ != dto.MetricType_COUNTER && typ != dto.MetricType_HISTOGRAM {
			continue
		}
		name := f.GetName()
		into, ok := m.families[name]
		if !ok {
			into = &dto.MetricFamily{Name: f.Name, Help: f.Help, Type: f.Type, Unit: f.Unit}
			m.families[name] = into
			m.series[name] = map[string]*dto.Metric{}
		} else if into.GetType() != typ {
			continue // two kinds of one name: keep the first
		}
		for _, metric := range f.Metric {
			key := seriesKey(metric)
			sum, ok := m.series[name][key]
			if !ok {
				sum = proto.Clone(metric).(*dto.Metric)
				clearTimestamps(sum)
				m.series[name][key] = sum
				into.Metric = append(into.Metric, sum)
				continue
			}
			combine(sum, metric, typ)
		}
	}
}

// result returns the merged families, sorted by name and their series by
// labels, as an exposition wants them.
func (m *merger) result() []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(m.families))
	for _, f := range m.families {
		slices.SortFunc(f.Metric, func(a, b *dto.Metric) int { return strings.Compare(seriesKey(a), seriesKey(b)) })
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// combine adds src into sum, two samples of the same series.
func combine(sum, src *dto.Metric, typ dto.MetricType) {
	switch typ {
	case dto.MetricType_COUNTER:
		sum.Counter.Value = proto.Float64(sum.Counter.GetValue() + src.Counter.GetValue())
	case dto.MetricType_UNTYPED:
		sum.Untyped.Value = proto.Float64(sum.Untyped.GetValue() + src.Untyped.GetValue())
	case dto.MetricType_GAUGE:
		if ownSeries(src) {
			sum.Gauge = proto.Clone(src.Gauge).(*dto.Gauge)
		} else {
			sum.Gauge.Value = proto.Float64(sum.Gauge.GetValue() + src.Gauge.GetValue())
		}
	case dto.MetricType_HISTOGRAM:
		h, s := sum.Histogram, src.Histogram
		if !sameBuckets(h.Bucket, s.Bucket) {
			sum.Histogram = proto.Clone(s).(*dto.Histogram)
			clearTimestamps(sum)
			return
		}
		h.SampleCount = proto.Uint64(h.GetSampleCount() + s.GetSampleCount())
		h.SampleSum = proto.Float64(h.GetSampleSum() + s.GetSampleSum())
		for i, b := range s.Bucket {
			h.Bucket[i].CumulativeCount = proto.Uint64(h.Bucket[i].GetCumulativeCount() + b.GetCumulativeCount())
		}
	default: // summaries: quantiles do not add up
		sum.Summary = proto.Clone(src.Summary).(*dto.Summary)
		clearTimestamps(sum)
	}
}

// ownSeries reports whether m is one process's and not to be summed.
func ownSeries(m *dto.Metric) bool {
	for _, l := range m.Label {
		if l.GetName() == ProcessLabel {
			return true
		}
	}
	return false
}

func sameBuckets(a, b []*dto.Bucket) bool {
	return slices.EqualFunc(a, b, func(x, y *dto.Bucket) bool { return x.GetUpperBound() == y.GetUpperBound() })
}

// clearTimestamps drops what is true of one process's series only: when it
// was created, and its exemplars.
func clearTimestamps(m *dto.Metric) {
	m.TimestampMs = nil
	if m.Counter != nil {
		m.Counter.CreatedTimestamp, m.Counter.Exemplar = nil, nil
	}
	if m.Histogram != nil {
		m.Histogram.CreatedTimestamp, m.Histogram.Exemplars = nil, nil
		for _, b := range m.Histogram.Bucket {
			b.Exemplar = nil
		}
	}
	if m.Summary != nil {
		m.Summary.CreatedTimestamp = nil
	}
}

// seriesKey identifies a series by its label pairs (which Gather sorts by
// name).
func seriesKey(m *dto.Metric) string {
	var b strings.Builder
	for _, l := range m.Label {
		b.WriteString(l.GetName())
		b.WriteByte(0)
		b.WriteString(l.GetValue())
		b.WriteByte(0)
	}
	return b.String()
}
