package spec

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed cron spec.
type Schedule interface {
	// Next returns the first activation strictly after t, in UTC. For a
	// schedule with no activation in the ten years after t it returns the
	// zero Time (ParseCron rejects schedules that never fire, so this
	// does not happen in practice).
	Next(t time.Time) time.Time
}

// ParseCron reads a cron spec:
//
//   - "@every DURATION" (a Go duration of at least 1s): activations at
//     every multiple of DURATION counted from midnight UTC of January 1,
//     year 1, so "@every 15m" fires at :00, :15, :30 and :45 and a restart
//     does not shift the ticks;
//   - "@hourly", "@daily", "@weekly" (Sunday 00:00), "@monthly" and
//     "@yearly", the usual shorthands;
//   - five fields, "minute hour day-of-month month day-of-week", each a
//     comma-separated list of "*", "N", "A-B", "*/S", "A-B/S" or "A/S"
//     (A to the field's maximum), with months jan..dec or 1..12 and days
//     of the week sun..sat, 0..6 or 7 for Sunday. As in classic cron, when
//     both day fields are restricted (neither starts with "*") a day
//     matches if either matches.
//
// All times are UTC.
func ParseCron(spec string) (Schedule, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return nil, fmt.Errorf("empty cron spec")
	}
	if rest, ok := strings.CutPrefix(s, "@every"); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil || strings.TrimSpace(rest) == "" {
			return nil, fmt.Errorf("%q: want \"@every DURATION\" with a Go duration such as 90s or 1h", spec)
		}
		if d < time.Second {
			return nil, fmt.Errorf("%q: the interval must be at least 1s", spec)
		}
		return every(d), nil
	}
	if s[0] == '@' {
		short, ok := cronShorthands[s]
		if !ok {
			return nil, fmt.Errorf("%q: unknown shorthand; use @every DURATION, @hourly, @daily, @weekly, @monthly or @yearly", spec)
		}
		s = short
	}
	fields := strings.Fields(s)
	if len(fields) != 5 {
		return nil, fmt.Errorf("%q has %d fields; want 5 (minute hour day-of-month month day-of-week) or @every DURATION, @hourly, @daily, @weekly", spec, len(fields))
	}
	var c cron
	var err error
	for i, f := range cronFields {
		if *f.bits(&c), err = f.parse(fields[i]); err != nil {
			return nil, fmt.Errorf("%q: %s field %q: %v", spec, f.name, fields[i], err)
		}
	}
	if c.dow&(1<<7) != 0 { // 7 is Sunday too
		c.dow = c.dow&^(1<<7) | 1
	}
	c.domStar = strings.HasPrefix(fields[2], "*")
	c.dowStar = strings.HasPrefix(fields[4], "*")
	if c.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("%q never fires", spec)
	}
	return &c, nil
}

var cronShorthands = map[string]string{
	"@hourly":   "0 * * * *",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@weekly":   "0 0 * * 0",
	"@monthly":  "0 0 1 * *",
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
}

// every fires at every multiple of itself since the zero Time.
type every time.Duration

func (e every) Next(t time.Time) time.Time {
	d := time.Duration(e)
	return t.UTC().Truncate(d).Add(d)
}

// cron holds one bit per allowed value of each field.
type cron struct {
	minute, hour, dom, month, dow uint64
	domStar, dowStar              bool
}

type cronField struct {
	name   string
	lo, hi int
	names  []string // names[i] is value lo+i
	bits   func(*cron) *uint64
}

var cronFields = []cronField{
	{"minute", 0, 59, nil, func(c *cron) *uint64 { return &c.minute }},
	{"hour", 0, 23, nil, func(c *cron) *uint64 { return &c.hour }},
	{"day-of-month", 1, 31, nil, func(c *cron) *uint64 { return &c.dom }},
	{"month", 1, 12, strings.Fields("jan feb mar apr may jun jul aug sep oct nov dec"), func(c *cron) *uint64 { return &c.month }},
	{"day-of-week", 0, 7, strings.Fields("sun mon tue wed thu fri sat"), func(c *cron) *uint64 { return &c.dow }},
}

func (f cronField) parse(s string) (uint64, error) {
	var bits uint64
	for _, part := range strings.Split(s, ",") {
		rng, stepStr, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n < 1 {
				return 0, fmt.Errorf("step %q is not a positive number", stepStr)
			}
			step = n
		}
		var a, b int
		switch lo, hi, isRange := strings.Cut(rng, "-"); {
		case rng == "*":
			a, b = f.lo, f.hi
		case isRange:
			var err error
			if a, err = f.value(lo); err != nil {
				return 0, err
			}
			if b, err = f.value(hi); err != nil {
				return 0, err
			}
			if a > b {
				return 0, fmt.Errorf("range %d-%d runs backwards", a, b)
			}
		default:
			var err error
			if a, err = f.value(rng); err != nil {
				return 0, err
			}
			b = a
			if hasStep {
				b = f.hi
			}
		}
		for v := a; v <= b; v += step {
			bits |= 1 << v
		}
	}
	return bits, nil
}

func (f cronField) value(s string) (int, error) {
	for i, name := range f.names {
		if strings.EqualFold(s, name) {
			return f.lo + i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if n < f.lo || n > f.hi {
		return 0, fmt.Errorf("%d is out of range %d-%d", n, f.lo, f.hi)
	}
	return n, nil
}

func (c *cron) Next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	end := t.AddDate(10, 0, 0)
	for t.Before(end) {
		y, m, d := t.Date()
		switch {
		case c.month&(1<<uint(m)) == 0:
			t = time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
		case !c.dayMatches(t):
			t = time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
		case c.hour&(1<<uint(t.Hour())) == 0:
			t = t.Truncate(time.Hour).Add(time.Hour)
		case c.minute&(1<<uint(t.Minute())) == 0:
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}

func (c *cron) dayMatches(t time.Time) bool {
	dom := c.dom&(1<<uint(t.Day())) != 0
	dow := c.dow&(1<<uint(t.Weekday())) != 0
	if c.domStar || c.dowStar {
		return dom && dow
	}
	return dom || dow
}
