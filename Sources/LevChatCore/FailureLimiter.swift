/// Online guessing limits (Docs/THREAT-MODEL.md): failed proofs are counted per source address;
/// an address with `maximumFailures` within `window`, or `maximumFailuresPerHour` within an hour
/// (so that pacing under the minute's limit does not get around it), is refused for `firstBlock`,
/// doubled each time it trips again (up to `longestBlock`). Only that address: never a lockout of
/// the whole room. `GuessBudget` bounds the whole room's wrong answers on top of this.
/// Pure, on the caller's clock.
public struct FailureLimiter: Sendable {
    public struct Policy: Sendable, Hashable {
        public var maximumFailures = 5
        public var window: Duration = .seconds(60)
        public var maximumFailuresPerHour = 10
        public var firstBlock: Duration = .seconds(60)
        public var longestBlock: Duration = .seconds(3600)
        /// Addresses remembered at most (the oldest are forgotten first).
        public var maximumAddresses = 4096
        public init() {}
    }

    struct Entry: Sendable {
        var failures: [Duration] = []
        var blockedUntil: Duration?
        var nextBlock: Duration
        var lastSeen: Duration
    }

    public let policy: Policy
    private var entries: [String: Entry] = [:]

    public init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// How much longer this address is refused; nil when it may try.
    public func refusal(for address: String, now: Duration) -> Duration? {
        guard let until = entries[address]?.blockedUntil, until > now else { return nil }
        return until - now
    }

    /// Counts a failed proof; returns the block it starts, if it trips the limit now.
    public mutating func recordFailure(from address: String, now: Duration) -> Duration? {
        var entry = entries[address] ?? Entry(nextBlock: policy.firstBlock, lastSeen: now)
        entry.lastSeen = now
        entry.failures.removeAll { now - $0 >= .seconds(3600) }
        entry.failures.append(now)
        let inWindow = entry.failures.filter { now - $0 < policy.window }.count
        var started: Duration?
        let tripped = inWindow >= policy.maximumFailures || entry.failures.count >= policy.maximumFailuresPerHour
        if tripped && !(entry.blockedUntil.map { $0 > now } ?? false) {
            started = entry.nextBlock
            entry.blockedUntil = now + entry.nextBlock
            entry.nextBlock = min(entry.nextBlock * 2, policy.longestBlock)
            entry.failures = []
        }
        entries[address] = entry
        if entries.count > policy.maximumAddresses { forgetOldest(now: now) }
        return started
    }

    private mutating func forgetOldest(now: Duration) {
        // Blocked addresses are kept; among the rest the least recently seen go.
        let removable = entries.filter { $0.value.blockedUntil.map { $0 <= now } ?? true }
            .sorted { $0.value.lastSeen < $1.value.lastSeen }
        for (address, _) in removable.prefix(entries.count - policy.maximumAddresses) { entries[address] = nil }
    }

    public var trackedAddresses: Int { entries.count }
}
