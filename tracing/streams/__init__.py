"""The stream-consumer core: consumer groups and names, reading across shards (cluster too),
reclaiming idle entries, NOGROUP recovery, acknowledging, one retry policy with an injectable
clock, one dead-letter policy, and the stream gauges. The sink, the rules, the alert-history
writer and the venue mirror are composed from these pieces."""
