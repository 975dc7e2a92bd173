/// The room-wide budget of proofs of the code a peer checks (Docs/THREAT-MODEL.md, "Guessing").
///
/// Rules:
/// 1. A proof of the code is checked only with a token; the bucket holds `perMinute` tokens and
///    gains `perMinute` a minute. A right proof gives its token back, so honest joins cost
///    nothing; only wrong answers use the budget up: at most `perMinute` (plus the bucket's
///    first fill) a minute, whatever the number of the attacker's addresses.
/// 2. With no token, a handshake waits its turn rather than being refused: under attack an
///    honest joiner gets in later, never not at all.
/// 3. Turns go to the source with the fewest recent wrong proofs, then to the longest waiting:
///    a joiner from an address that has not been guessing goes before every guesser.
/// 4. Sources are addresses, and IPv6 addresses by their /64 (`source(of:)`): an attacker
///    holding a whole prefix is one source.
/// 5. The first time a wait begins in an episode (the bucket ran dry), the host's user is told
///    once, with the number of wrong proofs in the last minute; the episode ends when the bucket
///    is full again.
///
/// Pure, on the caller's clock; the transport keeps the waiting connections.
public struct GuessBudget: Sendable {
    public struct Policy: Sendable, Hashable {
        /// Wrong answers a minute, room-wide (and the bucket's size).
        public var perMinute = 30
        /// How long a source's wrong proofs count against its place in the queue.
        public var memory: Duration = .seconds(3600)
        /// Sources remembered at most (the least recently seen go first).
        public var maximumSources = 4096
        public init(perMinute: Int = 30) { self.perMinute = perMinute }
    }

    public enum Turn: Equatable, Sendable {
        /// Check the proof now; call `settled` after.
        case now
        /// Wait for `due` to name this ticket; `startsAttack` holds the count of recent wrong
        /// proofs when this wait is the first of an episode (tell the user), else nil.
        case queued(startsAttack: Int?)
    }

    struct Waiter: Sendable {
        var ticket: UInt64
        var source: String
        var arrival: Duration
    }

    public let policy: Policy
    private var tokens: Double
    private var refilledAt: Duration
    private var queue: [Waiter] = []
    private var failures: [String: [Duration]] = [:]
    private var recentFailures: [Duration] = []
    private var inEpisode = false

    public init(policy: Policy = Policy(), now: Duration) {
        self.policy = policy
        tokens = Double(policy.perMinute)
        refilledAt = now
    }

    /// A proof from `source` is ready to be checked.
    public mutating func request(ticket: UInt64, source: String, now: Duration) -> Turn {
        refill(now)
        if queue.isEmpty && tokens >= 1 {
            tokens -= 1
            return .now
        }
        queue.append(Waiter(ticket: ticket, source: source, arrival: now))
        guard !inEpisode else { return .queued(startsAttack: nil) }
        inEpisode = true
        return .queued(startsAttack: wrongProofsInLastMinute(now))
    }

    /// The tickets whose turn it is now, best first; each has its token.
    public mutating func due(now: Duration) -> [UInt64] {
        refill(now)
        var released: [UInt64] = []
        while tokens >= 1, let best = bestWaiter(now) {
            tokens -= 1
            released.append(queue.remove(at: best).ticket)
        }
        return released
    }

    /// A waiting handshake ended (closed or timed out) before its turn.
    public mutating func withdraw(ticket: UInt64) {
        queue.removeAll { $0.ticket == ticket }
    }

    /// The proof of a handshake that had its turn was checked: a right one (or a handshake that
    /// ended for another reason) gives its token back; a wrong one is counted against its source.
    public mutating func settled(source: String, wrong: Bool, now: Duration) {
        refill(now)
        guard wrong else {
            tokens = min(tokens + 1, Double(policy.perMinute))
            return
        }
        failures[source, default: []].append(now)
        // Kept to a minute's worth: under a steady attack it would otherwise grow for ever.
        recentFailures.removeAll { now - $0 >= .seconds(60) }
        recentFailures.append(now)
        if failures.count > policy.maximumSources { forgetOldest() }
    }

    /// How long until the next waiter can have its turn; nil when nobody waits.
    public func nextRelease(now: Duration) -> Duration? {
        guard !queue.isEmpty else { return nil }
        let have = tokens + rate * (now - refilledAt).seconds
        if have >= 1 { return .zero }
        return .seconds((1 - have) / rate)
    }

    public var waiting: Int { queue.count }

    /// Wrong proofs checked in the last minute, room-wide.
    public mutating func wrongProofsInLastMinute(_ now: Duration) -> Int {
        recentFailures.removeAll { now - $0 >= .seconds(60) }
        return recentFailures.count
    }

    private var rate: Double { Double(policy.perMinute) / 60 }

    private mutating func refill(_ now: Duration) {
        guard now > refilledAt else { return }
        tokens = min(Double(policy.perMinute), tokens + rate * (now - refilledAt).seconds)
        refilledAt = now
        if queue.isEmpty && tokens >= Double(policy.perMinute) { inEpisode = false }
    }

    private mutating func bestWaiter(_ now: Duration) -> Int? {
        var best: (index: Int, failures: Int, arrival: Duration)?
        for (index, waiter) in queue.enumerated() {
            let count = recentFailures(of: waiter.source, now: now)
            if best == nil || count < best!.failures || count == best!.failures && waiter.arrival < best!.arrival {
                best = (index, count, waiter.arrival)
            }
        }
        return best?.index
    }

    private mutating func recentFailures(of source: String, now: Duration) -> Int {
        guard var times = failures[source] else { return 0 }
        times.removeAll { now - $0 >= policy.memory }
        failures[source] = times.isEmpty ? nil : times
        return times.count
    }

    private mutating func forgetOldest() {
        let oldest = failures.sorted { ($0.value.last ?? .zero) < ($1.value.last ?? .zero) }
        for (source, _) in oldest.prefix(failures.count - policy.maximumSources) { failures[source] = nil }
    }

    /// The source a guess is counted against: an IPv4 address as it is, an IPv6 address by its
    /// /64 (its first four groups, written in full), so one machine's many addresses are one.
    /// A link-local address (fe80::/10) is its whole self: every machine on the LAN shares
    /// fe80::/64, and one of them must not be able to spend the others' share.
    public static func source(of address: String) -> String {
        let host = address.split(separator: "%", maxSplits: 1).first.map(String.init) ?? address
        guard host.contains(":") else { return host }
        if Endpoint.isLinkLocal(host) { return host.lowercased() }
        let halves = host.components(separatedByDoubleColon: ())
        let head = halves.first.map { $0.isEmpty ? [] : $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) } ?? []
        let tailCount = halves.count > 1 ? (halves[1].isEmpty ? 0 : halves[1].split(separator: ":").count) : 0
        var groups = head
        if halves.count > 1 { groups += Array(repeating: "0", count: max(0, 8 - head.count - tailCount)) }
        if halves.count > 1, !halves[1].isEmpty { groups += halves[1].split(separator: ":").map(String.init) }
        let prefix = groups.prefix(4).map { group -> String in
            let digits = String(group.lowercased().drop { $0 == "0" })
            return digits.isEmpty ? "0" : digits
        }
        return prefix.joined(separator: ":") + "::/64"
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

extension String {
    /// Splits at the first `::` (an IPv6 address has at most one).
    fileprivate func components(separatedByDoubleColon: ()) -> [String] {
        var index = startIndex
        while index < endIndex {
            let next = self.index(after: index)
            if self[index] == ":", next < endIndex, self[next] == ":" {
                return [String(self[..<index]), String(self[self.index(after: next)...])]
            }
            index = next
        }
        return [self]
    }
}
