package selector

import (
	"strconv"
	"testing"
)

const benchSelector = `projectcalico.org/namespace == "prod" && app in {"web", "api", "worker"} && ` +
	`!has(quarantine) && (tier starts with "front" || role != "db")`

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(benchSelector); err != nil {
			b.Fatal(err)
		}
	}
}

// bench20Labels returns 20 labels on which benchSelector's 5 terms all hold,
// so no term short-circuits.
func bench20Labels() map[string]string {
	m := map[string]string{
		"projectcalico.org/namespace":      "prod",
		"projectcalico.org/orchestrator":   "k8s",
		"projectcalico.org/serviceaccount": "default",
		"app":                              "worker",
		"tier":                             "frontend",
		"role":                             "cache",
	}
	for i := len(m); i < 20; i++ {
		m["example.com/label-"+strconv.Itoa(i)] = "value-" + strconv.Itoa(i)
	}
	return m
}

func BenchmarkEvaluate5Terms20Labels(b *testing.B) {
	sel := MustParse(benchSelector)
	m := bench20Labels()
	if !sel.EvaluateMap(m) {
		b.Fatal("selector does not match")
	}
	b.Run("Map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sel.EvaluateMap(m)
		}
	})
	b.Run("Labels", func(b *testing.B) {
		l := WithParent(Map(m), Map{"team": "blue"})
		b.ReportAllocs()
		for b.Loop() {
			sel.Evaluate(l)
		}
	})
}
