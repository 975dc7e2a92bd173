/// Finding the next host after losing one (Docs/MIGRATION.md, "Crash and silent loss"): the
/// rules, without I/O. The peer asks every other peer of the last roster who the host is, all at
/// once, feeds each answer to `record`, and when the round is over asks `decide` what to do.
///
/// - A host that answers is joined (the highest epoch if several do).
/// - A member still linked to a host other than the lost one is followed there.
/// - A member still linked to the lost host only counts once the lost host has been asked in the
///   same round (if we cannot reach it ourselves, following is no use).
/// - Being asked by a peer of the room counts as an answer for evidence (`wasAskedByMember`).
/// - A peer (other than the lost host) silent in a round gets a longer time to answer in the next
///   (`probeTimeout`).
/// - A senior (a candidate ranked before this peer) that answers as a member is alive: it goes
///   first, so this peer waits.
/// - A senior that stayed silent may only be slow: a junior promotes past it only after a round
///   with twice the first probe time.
/// - Without any of those, the most senior candidate promotes itself, after `rank × stagger`,
///   but only with evidence that its own network works: some peer answered or refused, or the
///   lost host was the only other peer. A peer whose own cable is out must not make a room of its
///   own while the others still have their host.
/// - A peer that is leaving and has no evidence gives up instead of waiting.
public struct HostSearch: Sendable {
    /// What a probe of one peer gave.
    public enum Answer: Sendable, Equatable {
        case answered(Redirect)
        /// The address answered with a reset: its machine is up, nothing listens there.
        case refused
        case silent
    }

    public enum Decision: Sendable, Equatable {
        case join([String])
        case promote(epoch: Int)
        /// Ask again after a pause; `firstTimeAlone` is true the first time nobody could be
        /// reached (the user is told once).
        case retry(firstTimeAlone: Bool)
        /// Leaving, and nobody can be reached: stop waiting for a host.
        case giveUp
    }

    /// The peers to ask: everyone in the last roster but this peer, in the order their answers
    /// decide: the lost host, then the candidates by rank (this peer's seniors first). A round
    /// asks a few at a time in this order (`Succession.probesAtOnce`), so in a large room the
    /// answers that settle it come first and the rest are never asked.
    public let others: [Member]
    /// This peer's place among the candidates (everyone but the lost host, by ordinal).
    public let rank: Int
    private let seniors: Set<NodeID>
    private let lostHost: NodeID
    private let lostHostEndpoints: Set<String>
    private var evidence: Bool
    private var highestEpoch: Int
    private var told = false
    /// How long each probe of the next round may take.
    public private(set) var probeTimeout: Duration
    private let firstProbe: Duration
    private let longestProbe: Duration
    // This round.
    private var reported: Set<NodeID> = []
    private var seniorAlive = false
    private var linkedElsewhere: [String]?
    private var linkedToLostHost = false
    private var bestHost: Redirect?
    private var someoneSilent = false
    /// Peers that answered or refused this round (not silent).
    private var heard: Set<NodeID> = []

    /// `probeTimeout` is the first round's; a round in which a peer other than the lost host did
    /// not answer in time doubles it for the next, up to eight times: a peer too busy to answer
    /// within a second (a crowd on one machine, a slow laptop) is not a dead one, and a junior
    /// that took its seniors' slowness for death made a second host (Docs/MIGRATION.md).
    public init(roster: RosterSnapshot, me: NodeID, probeTimeout: Duration = .seconds(1)) {
        self.probeTimeout = probeTimeout
        firstProbe = probeTimeout
        longestProbe = probeTimeout * 8
        let candidates = roster.members.filter { $0.node != roster.host }.sorted { $0.ordinal < $1.ordinal }
        others = (roster.members.filter { $0.node == roster.host } + candidates).filter { $0.node != me }
        rank = candidates.firstIndex { $0.node == me } ?? candidates.count
        seniors = Set(candidates.prefix(rank).map(\.node))
        lostHost = roster.host
        lostHostEndpoints = Set(roster.members.first { $0.node == roster.host }?.endpoints ?? [])
        evidence = others.allSatisfy { $0.node == roster.host }
        highestEpoch = roster.epoch
    }

    /// A peer that proved the room secret asked this one where the host is: this peer's network
    /// works, even when the last roster names nobody it can reach (a member that joined just
    /// before a split, whom the roster here does not list yet, is asking).
    public mutating func wasAskedByMember() {
        evidence = true
    }

    /// Takes one peer's answer; true when the round can stop here (the rest would change nothing).
    public mutating func record(_ answer: Answer, from peer: NodeID) -> Bool {
        reported.insert(peer)
        if answer != .silent { heard.insert(peer) }
        switch answer {
        case .answered(let redirect):
            evidence = true
            highestEpoch = max(highestEpoch, redirect.epoch ?? 0)
            switch redirect.role {
            case .host?:
                if (redirect.epoch ?? 0) >= (bestHost?.epoch ?? -1) { bestHost = redirect }
            case .member? where !redirect.endpoints.isEmpty:
                if lostHostEndpoints.isDisjoint(with: redirect.endpoints) { linkedElsewhere = redirect.endpoints }
                else { linkedToLostHost = true }
            case .member?, .electing?, nil: break
            }
            if redirect.role != .host && seniors.contains(peer) { seniorAlive = true }
        case .refused: evidence = true
        case .silent: if peer != lostHost { someoneSilent = true }
        }
        if bestHost != nil || linkedElsewhere != nil { return true }
        // The seniors decide whether to wait; the rest only add evidence.
        return evidence && reported.isSuperset(of: seniors) && (!linkedToLostHost || reported.contains(lostHost))
    }

    /// The round is over (every answer in, or the probe timeout); `elapsed` is the time since the
    /// host was found lost. Starts the next round.
    public mutating func decide(elapsed: Duration, stagger: Duration, leaving: Bool) -> Decision {
        defer {
            if someoneSilent { probeTimeout = min(probeTimeout * 2, longestProbe) }
            reported = []
            seniorAlive = false
            linkedElsewhere = nil
            linkedToLostHost = false
            bestHost = nil
            someoneSilent = false
            heard = []
        }
        if let bestHost { return .join(bestHost.endpoints) }
        if let linkedElsewhere { return .join(linkedElsewhere) }
        // A senior that did not answer in a round of the first probe time may only be slow: a
        // junior waits for a second round, with twice the time, before it goes ahead of it. (A
        // senior refused is gone for sure: its machine is up and nothing listens.)
        let seniorUnheard = !seniors.isSubset(of: heard)
        let seniorMayBeSlow = seniorUnheard && probeTimeout < firstProbe * 2
        if !seniorAlive && evidence && elapsed >= stagger * rank && !seniorMayBeSlow { return .promote(epoch: highestEpoch + 1) }
        if !evidence {
            if leaving { return .giveUp }
            defer { told = true }
            return .retry(firstTimeAlone: !told)
        }
        return .retry(firstTimeAlone: false)
    }
}
