package calc

// labelSet is an item's effective labels as layers, the first layer that
// has a key giving its value: the implicit labels, the item's own labels,
// then each profile's labelsToApply in order. The layers are shared, never
// copied or modified (the own layer is the resource's label map), so an
// item costs a slice header rather than a merged map.
type labelSet struct {
	layers []map[string]string
}

// Get implements selector.Labels.
func (l *labelSet) Get(k string) (string, bool) {
	for _, m := range l.layers {
		if v, ok := m[k]; ok {
			return v, true
		}
	}
	return "", false
}

// each calls fn for every effective (key, value) pair.
func (l *labelSet) each(fn func(k, v string)) {
	for i, m := range l.layers {
		for k, v := range m {
			if !l.inFirst(i, k) {
				fn(k, v)
			}
		}
	}
}

// inFirst reports whether one of the first n layers has k.
func (l *labelSet) inFirst(n int, k string) bool {
	for _, m := range l.layers[:n] {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// size is the number of entries over all layers (an upper bound of the
// number of effective labels).
func (l *labelSet) size() int {
	n := 0
	for _, m := range l.layers {
		n += len(m)
	}
	return n
}

// equal reports whether two label sets have the same effective labels.
func (l *labelSet) equal(o *labelSet) bool {
	if l == o {
		return true
	}
	if l == nil || o == nil {
		return false
	}
	same := true
	l.each(func(k, v string) {
		if ov, ok := o.Get(k); !ok || ov != v {
			same = false
		}
	})
	if !same {
		return false
	}
	o.each(func(k, _ string) {
		if _, ok := l.Get(k); !ok {
			same = false
		}
	})
	return same
}

// newLabelSet builds a label set from non-empty layers.
func newLabelSet(layers ...map[string]string) *labelSet {
	l := &labelSet{layers: make([]map[string]string, 0, len(layers))}
	for _, m := range layers {
		if len(m) > 0 {
			l.layers = append(l.layers, m)
		}
	}
	return l
}
