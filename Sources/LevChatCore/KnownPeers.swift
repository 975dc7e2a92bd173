/// The (name, key fingerprint) pairs this user has met, trust on first use as SSH's known_hosts
/// (Docs/THREAT-MODEL.md, "Identity across runs"). A name met again with another key is a
/// warning: it may be someone else under that name. Names are compared as `NameRule.sameName`
/// does, so a look-alike name is the same entry. Pure: the peer layer reads and writes the file.
///
/// The file: one line per name, `FINGERPRINT SINCE NAME` (32 hex digits, a `YYYY-MM-DD` date,
/// and the name, which is last because it may hold spaces).
public struct KnownPeers: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var fingerprint: String
        public var since: String
    }

    public enum Verdict: Equatable, Sendable {
        /// Never met: remembered from now on.
        case new
        case known
        /// Remembered with `previous` since `since`.
        case changed(previous: String, since: String)
    }

    public private(set) var entries: [String: Entry] = [:]
    /// Most entries kept; a file that grew past it keeps its first ones.
    public static let maximumEntries = 10_000

    public init() {}

    /// Reads the file's text; lines that are not entries are skipped.
    public init(parsing text: String) {
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0].utf8.count == 32, NodeID(hex: String(parts[0])) != nil, parts[1].utf8.count == 10,
                  NameRule.isValid(String(parts[2])), entries.count < KnownPeers.maximumEntries else { continue }
            let entry = Entry(name: String(parts[2]), fingerprint: String(parts[0]), since: String(parts[1]))
            if entries[NameRule.skeleton(entry.name)] == nil { entries[NameRule.skeleton(entry.name)] = entry }
        }
    }

    public var text: String {
        entries.values.sorted { $0.name < $1.name }.map { "\($0.fingerprint) \($0.since) \($0.name)\n" }.joined()
    }

    public func entry(for name: String) -> Entry? { entries[NameRule.skeleton(name)] }

    /// Checks a member met now, and remembers it when it is new.
    public mutating func meet(name: String, node: NodeID, today: String) -> Verdict {
        let key = NameRule.skeleton(name)
        guard let known = entries[key] else {
            if entries.count < KnownPeers.maximumEntries { entries[key] = Entry(name: name, fingerprint: node.hex, since: today) }
            return .new
        }
        return known.fingerprint == node.hex ? .known : .changed(previous: known.fingerprint, since: known.since)
    }
}

/// A key's fingerprint as people read it: the node id (the first 16 bytes of SHA-256 of the
/// public key) in eight groups of four hex digits; the short form is the first two groups.
public enum Fingerprint {
    public static func full(_ node: NodeID) -> String {
        var groups: [Substring] = []
        var rest = Substring(node.hex)
        while !rest.isEmpty {
            groups.append(rest.prefix(4))
            rest = rest.dropFirst(4)
        }
        return groups.joined(separator: " ")
    }

    public static func short(_ node: NodeID) -> String { String(node.hex.prefix(8)) }
}

/// Sender sequence numbers and name-claim counters of one run start at the run's wall clock in
/// milliseconds times 2^20, so that a persistent identity's next run never reuses a message id
/// (its node id is the same) and its name claims keep rising (Docs/PROTOCOL.md, "Names").
public enum RunSequence {
    public static let shift = 20

    public static func first(wallMillis: Int64) -> Int {
        Int(max(wallMillis, 1)) << shift
    }
}
