/// How often one source address, and one member, may come into the room, and how many of the
/// room's places one address may hold (Docs/THREAT-MODEL.md, "Churn and places"). Every arrival
/// moves the room secret and tells every member; a peer that joins and leaves in a loop would
/// make the whole room work for it, and one address filling the room would keep everyone else out.
///
/// Sources are addresses, IPv6 addresses by their /64 (`GuessBudget.source(of:)`). This machine's
/// own addresses (loopback) are not limited: whoever runs processes here can do anything anyway,
/// and the bench puts hundreds of members on 127.0.0.1.
public struct ChurnLimiter: Sendable {
    public struct Policy: Sendable, Hashable {
        /// Joins and resumes from one source in any minute (after a host change, resumes into the
        /// collection window are not counted: the room is re-forming).
        public var arrivalsPerSourcePerMinute = 30
        /// Arrivals of one member (node) in any minute: a flaky link reconnects, a loop does not.
        public var arrivalsPerNodePerMinute = 10
        /// Places one source may hold at once.
        public var placesPerSource = 64
        /// Sources and nodes remembered at most (the least recently seen are forgotten first).
        public var maximumTracked = 4096
        public init() {}
    }

    public enum Refusal: Equatable, Sendable {
        /// Too many arrivals lately: try again after this long.
        case tooOften(Duration)
        /// The source already holds its share of the room's places.
        case noPlaceForSource(Int)
    }

    public let policy: Policy
    private var bySource: [String: [Duration]] = [:]
    private var byNode: [NodeID: [Duration]] = [:]

    public init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// Whether `address` is this machine's own (or unknown, in-process).
    public static func isExempt(_ address: String) -> Bool {
        let host = address.split(separator: "%", maxSplits: 1).first.map(String.init) ?? address
        return host.isEmpty || host == "::1" || host.hasPrefix("127.") || host == "localhost"
    }

    /// An arrival from `address` of `node`, which holds `placesHeld` places from that source now.
    /// Nil when it may come in (and it is counted); otherwise why not.
    public mutating func arrive(from address: String, node: NodeID, placesHeld: Int, counted: Bool, now: Duration) -> Refusal? {
        guard !Self.isExempt(address) else { return nil }
        guard placesHeld < policy.placesPerSource else { return .noPlaceForSource(policy.placesPerSource) }
        guard counted else { return nil }
        let source = GuessBudget.source(of: address)
        let minuteAgo = now - .seconds(60)
        var sourceTimes = (bySource[source] ?? []).filter { $0 > minuteAgo }
        var nodeTimes = (byNode[node] ?? []).filter { $0 > minuteAgo }
        if sourceTimes.count >= policy.arrivalsPerSourcePerMinute, let oldest = sourceTimes.first {
            bySource[source] = sourceTimes
            return .tooOften(oldest + .seconds(60) - now)
        }
        if nodeTimes.count >= policy.arrivalsPerNodePerMinute, let oldest = nodeTimes.first {
            byNode[node] = nodeTimes
            return .tooOften(oldest + .seconds(60) - now)
        }
        sourceTimes.append(now)
        nodeTimes.append(now)
        bySource[source] = sourceTimes
        byNode[node] = nodeTimes
        forgetOldest(now: now)
        return nil
    }

    /// Sources and nodes remembered now (bounded by `maximumTracked` each).
    var tracked: (sources: Int, nodes: Int) { (bySource.count, byNode.count) }

    /// Keeps the tables bounded: past `maximumTracked`, first whatever is older than a minute
    /// goes, then the least recently seen down to three quarters of the bound, so the work is
    /// done once per quarter of the bound, not at every arrival of an attacker with many sources.
    private mutating func forgetOldest(now: Duration) {
        let minuteAgo = now - .seconds(60)
        func pruned<Key>(_ table: [Key: [Duration]]) -> [Key: [Duration]] {
            guard table.count > policy.maximumTracked else { return table }
            let recent = table.filter { ($0.value.last ?? .zero) > minuteAgo }
            let keep = policy.maximumTracked * 3 / 4
            guard recent.count > keep else { return recent }
            let newest = recent.sorted { ($0.value.last ?? .zero) > ($1.value.last ?? .zero) }.prefix(keep)
            return Dictionary(uniqueKeysWithValues: newest.map { ($0.key, $0.value) })
        }
        bySource = pruned(bySource)
        byNode = pruned(byNode)
    }
}
