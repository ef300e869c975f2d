//! A source partition's progress in event time, for rolling files at event-time window
//! boundaries only when the partition sends its events in time order.

/// Events in a row, each in the latest event-time window seen or a later one, after which a
/// partition counts as sending in time order. Rolling at window boundaries suits only such
/// streams: in a backfill whose events come in any order, each new latest window would roll
/// files holding a handful of rows.
const IN_ORDER_AFTER: u64 = 100;

/// A partition's progress in event time.
#[derive(Debug, Default)]
pub(super) struct EventClock {
    /// The latest event-time window seen (the watermark).
    pub(super) watermark: Option<i64>,
    /// Events since the last one from a window before the watermark (a late event).
    in_order_run: u64,
}

impl EventClock {
    pub(super) fn observe(&mut self, window: i64) {
        match self.watermark {
            Some(latest) if window < latest => self.in_order_run = 0,
            _ => {
                self.in_order_run += 1;
                self.watermark = Some(window);
            }
        }
    }

    pub(super) fn in_order(&self) -> bool {
        self.in_order_run >= IN_ORDER_AFTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_in_time_order_counts_as_ordered_after_enough_events() {
        let mut clock = EventClock::default();
        for i in 0..IN_ORDER_AFTER {
            assert!(!clock.in_order(), "not yet, after {i} events");
            clock.observe(7);
        }
        assert!(clock.in_order());
        clock.observe(8);
        assert_eq!(clock.watermark, Some(8));
        assert!(clock.in_order(), "moving on to a later window keeps the order");
    }

    #[test]
    fn a_late_event_resets_the_run_but_not_the_watermark() {
        let mut clock = EventClock::default();
        (0..IN_ORDER_AFTER).for_each(|_| clock.observe(10));
        clock.observe(9);
        assert!(!clock.in_order());
        assert_eq!(clock.watermark, Some(10), "a late event never moves the watermark back");
        (0..IN_ORDER_AFTER).for_each(|_| clock.observe(10));
        assert!(clock.in_order());
    }

    #[test]
    fn events_in_any_order_never_count_as_ordered() {
        let mut clock = EventClock::default();
        // Days of a month visited in a scrambled order, as a backfill sends them.
        for i in 0..10_000_i64 {
            clock.observe((i * 17) % 31);
            assert!(!clock.in_order(), "event {i}");
        }
    }
}
