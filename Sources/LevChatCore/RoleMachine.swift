/// The rules a peer follows between links, whatever its role (Docs/MIGRATION.md): how it gets
/// in, what it does when a link ends, how it follows a successor, and when a host yields to
/// another host of the room (partition heal). Pure: the peer layer (`RoomPeer`) feeds each
/// event in and performs the step that comes out; `HostSearch` is the rule set for finding
/// the next host after a loss. Each rule has its unit test (`RoleMachineTests`).

/// How a peer's run ended; the CLI turns it into a sentence and an exit code.
public enum PeerOutcome: Equatable, Sendable {
    /// The user left (typed /quit, closed input, pressed Ctrl-C).
    case left
    /// The host closed the room.
    case roomClosed
    /// The link to the host died.
    case hostLost(String)
    /// Some typed messages were never echoed by a host before leaving.
    case leftWithUndelivered(Int)
    case refused(ErrorInfo)
    case connectFailed(ConnectFailure)
    /// Nothing on the network advertised a room with this code.
    case roomNotFound
    /// mDNS could not be used (avahi-daemon missing or unreachable).
    case discoveryUnavailable(DiscoveryError)
    case protocolViolation(String)
}

public enum ConnectFailure: Equatable, Sendable {
    case unreachable(String)
    case wrongCode(String)
    case impostor(String)
    case incompatible(String)
    /// The host refuses this address for a while (too many failed proofs from it).
    case limited(String)
    /// This peer could not listen where it was told (`--bind`, `--port`): a port in use, an
    /// address that is not this machine's.
    case cannotListen(String)
    case other(String)
}

/// How one attempt at a link to a host went.
public enum LinkResult: Equatable, Sendable {
    /// No session: nothing answered, or the handshake failed.
    case failed(ConnectFailure)
    /// The session ran (or was refused) and ended like this.
    case ended(MemberSession.Ending)
    /// The user left.
    case left(PeerOutcome)
}

/// Timings of a host change (Docs/MIGRATION.md). Settings so tests can run them fast.
public struct Succession: Sendable {
    public var stagger: Duration = .milliseconds(400)
    /// How long a new host waits for the last roster's members to resume before it announces
    /// itself and sequences new messages (it stops early when all are back).
    public var collectWindow: Duration = .milliseconds(1500)
    /// How long a "who is the host?" probe may take: connect, handshake and answer.
    public var probeTimeout: Duration = .seconds(1)
    /// Pause between rounds of probes while the next host is being found.
    public var retry: Duration = .milliseconds(100)
    /// Probes of one round under way at once (`HostSearch.others` gives the order).
    public var probesAtOnce = 32
    /// How long a host keeps asking the members it lost who their host is now (Docs/MIGRATION.md,
    /// "Partition heal"); after that only advertisements bring two sides of a split together.
    public var lostMembersAsked: Duration = .seconds(300)
    public init() {}
}

// MARK: A member between links

/// What a member does once a link to its host has ended.
public enum MemberStep: Equatable, Sendable {
    /// The run is over.
    case finish(PeerOutcome)
    /// This peer is the successor: it becomes the host at this epoch.
    case promote(epoch: Int)
    /// The host left and named another successor: link to it (`Following`).
    case follow(Handover)
    /// Try these endpoints, in order (a redirect said the host is there).
    case link([String])
    /// The host is lost: find the next one (`HostSearch`).
    case findHost
}

public enum MemberCourse {
    /// The step after a link of a member that is in the room ended this way.
    public static func step(after ending: MemberSession.Ending, me: NodeID) -> MemberStep {
        switch ending {
        case .roomClosed: .finish(.roomClosed)
        case .refused(let info): .finish(.refused(info))
        case .protocolViolation(let why): .finish(.protocolViolation(why))
        case .handover(let handover) where handover.host.node == me: .promote(epoch: handover.epoch)
        case .handover(let handover): .follow(handover)
        case .redirected(let redirect) where !redirect.endpoints.isEmpty: .link(redirect.endpoints)
        case .hostLost, .redirected: .findHost
        }
    }

    /// How the next link went, as the next ending to act on; nil when the user left (the run is
    /// over with that outcome). A host that did not answer is a lost host.
    public static func ending(after result: LinkResult?) -> Result<MemberSession.Ending, Left> {
        switch result {
        case .left(let outcome)?: .failure(Left(outcome: outcome))
        case .ended(let ending)?: .success(ending)
        case .failed?, nil: .success(.hostLost("the next host did not answer"))
        }
    }

    public struct Left: Error, Equatable, Sendable {
        public let outcome: PeerOutcome
        public init(outcome: PeerOutcome) { self.outcome = outcome }
    }
}

// MARK: Getting in

/// A joiner's first way into the room: candidates from discovery (or `--peer`), then any
/// redirects they give, depth first, at most `maximumRedirects` of them.
public struct FirstJoin: Sendable {
    public enum Action: Equatable, Sendable {
        /// Link to this endpoint.
        case link(String)
        /// Link to this endpoint again after a pause (it was finding its host).
        case linkAfterPause(String)
        /// Ask discovery for the next candidate (`candidate`).
        case nextCandidate
        /// The session now has a room; go on as a member after this ending (`MemberCourse`).
        case inRoom(MemberSession.Ending)
        case finish(PeerOutcome)
        /// The name asked for is taken: join as this one (`MemberSession.joinAs`), linking to
        /// the endpoint again.
        case rename(String, thenLink: String)
    }

    public static let maximumRedirects = 8
    /// Names tried after the login name: `pi-2` up to `pi-9`.
    public static let maximumRenames = 8
    private var queued: [(endpoint: String, pause: Bool)] = []
    private var hops = 0
    private var lastFailure: ConnectFailure?
    /// The name asked for when the user did not choose it (their login name, or `guest`): two
    /// users called `pi` on one LAN is common, and the second was refused (exit 67) where a chat
    /// client takes a free name. One the user chose (`--name`) is refused as before.
    private let defaultName: String?
    private var renames = 0

    public init(defaultName: String? = nil) {
        self.defaultName = defaultName
    }

    /// `base` numbered `n` (`pi-2`), cut to fit a name's 32 characters and 64 bytes.
    public static func numbered(_ base: String, _ n: Int) -> String {
        NameRule.fitted(base, then: "-\(n)")
    }

    /// What to do now: a redirect's endpoint first, else a new candidate.
    public mutating func next() -> Action {
        guard !queued.isEmpty else { return .nextCandidate }
        let (endpoint, pause) = queued.removeFirst()
        return pause ? .linkAfterPause(endpoint) : .link(endpoint)
    }

    /// Discovery's next candidate; nil when there are no more.
    public func candidate(_ endpoint: String?) -> Action {
        if let endpoint { return .link(endpoint) }
        return .finish(lastFailure.map(PeerOutcome.connectFailed) ?? .roomNotFound)
    }

    /// How the link to `endpoint` went; `hasRoom` is true once a welcome came. Nil: go on (`next`).
    public mutating func linked(_ endpoint: String, _ result: LinkResult, hasRoom: Bool) -> Action? {
        switch result {
        case .failed(let failure):
            lastFailure = failure
            return nil
        case .left(let outcome):
            return .finish(outcome)
        case .ended(let ending) where hasRoom:
            return .inRoom(ending)
        case .ended(let ending):
            switch ending {
            case .redirected(let redirect) where hops < Self.maximumRedirects:
                hops += 1
                // A member that is itself finding the host has nothing to point at: ask it again.
                let next = redirect.endpoints.isEmpty ? [(endpoint, true)] : redirect.endpoints.map { ($0, false) }
                queued = next + queued
                return nil
            case .redirected:
                lastFailure = .other("too many redirects")
                return nil
            case .handover:
                lastFailure = .other("the host left while we joined")
                return nil
            case .refused(let info):
                guard info.code == ErrorCode.nameTaken.rawValue, let defaultName, renames < Self.maximumRenames else {
                    return .finish(.refused(info))
                }
                renames += 1
                return .rename(Self.numbered(defaultName, renames + 1), thenLink: endpoint)
            case .protocolViolation(let why): return .finish(.protocolViolation(why))
            case .roomClosed: return .finish(.roomClosed)
            case .hostLost(let why): return .finish(.hostLost(why))
            }
        }
    }
}

// MARK: Following a named successor

/// After a handover: link to the successor until it answers as the host, for at most the
/// dead-link time (it may need a moment to take over).
public struct Following: Sendable {
    public enum Action: Equatable, Sendable {
        /// Try the successor's endpoints (now, or after this pause).
        case link([String], after: Duration)
        /// It is over: act on this result (nil: the successor never answered).
        case done(LinkResult?)
    }

    /// A successor that answers as a member has not taken over yet: ask again this soon.
    public static let reask = Duration.milliseconds(20)
    public let handover: Handover
    private let deadline: Duration
    private let retry: Duration

    /// `now` and the durations on one monotonic clock.
    public init(_ handover: Handover, now: Duration, patience: Duration, retry: Duration) {
        self.handover = handover
        deadline = now + patience
        self.retry = retry
    }

    public var first: Action { .link(handover.host.endpoints, after: .zero) }

    /// The attempt's result (nil: none of the endpoints answered).
    public func attempted(_ result: LinkResult?, now: Duration) -> Action {
        if case .ended(.redirected(let redirect))? = result, redirect.role != .host {
            return now < deadline ? .link(handover.host.endpoints, after: Self.reask) : .done(nil)
        }
        if let result { return .done(result) }
        return now < deadline ? .link(handover.host.endpoints, after: retry) : .done(nil)
    }
}

// MARK: Partition heal

/// When a host hands its members to another host of the same room (Docs/MIGRATION.md,
/// "Partition heal"): only to one whose authenticated claim (`HostClaim`) beats its own.
public enum PartitionHeal {
    /// How many times a host challenges an advertisement before it lets it be, one second apart.
    public static let challengeAttempts = 5
    public static let challengePause = Duration.seconds(1)
    /// A host whose browsing stopped (avahi-daemon went away) browses again after this pause, the
    /// pace at which its advertiser reconnects.
    public static let browseAgainAfter = Duration.seconds(2)
    /// Of a lost member's endpoints, and of the host endpoints it names, how many to ask.
    public static let endpointsAsked = 2

    /// An advertisement worth a probe: this room, not this host's own, at least this epoch.
    public static func worthChallenging(_ advertisement: RoomAdvertisement, room: RoomID, me: NodeID, epoch: Int) -> Bool {
        advertisement.roomID == room
            && !advertisement.instanceName.hasPrefix(RoomAdvertisement.instanceName(room: room, host: me))
            && advertisement.epoch >= epoch
    }

    public enum Step: Equatable, Sendable {
        /// Hand the members over to this host and resume there as a member.
        case yield(to: Member, epoch: Int)
        /// A member answered: ask the host it names (these endpoints).
        case askHost([String])
        case nothing
    }

    /// What an answer from `endpoint` means to the host with this claim. `viaMember`: the answer
    /// came from a host a member pointed at, which is not followed further.
    public static func step(after answer: Redirect, at endpoint: String, mine: HostClaim, viaMember: Bool = false) -> Step {
        switch answer.role {
        case .host?:
            guard let epoch = answer.epoch, let node = answer.node, node != mine.node,
                  HostClaim(epoch: epoch, ordinal: answer.ordinal ?? Int.max, node: node).beats(mine) else { return .nothing }
            let target = Member(node: node, name: "", ordinal: answer.ordinal ?? 0,
                                endpoints: [endpoint] + answer.endpoints.filter { $0 != endpoint })
            return .yield(to: target, epoch: epoch)
        case .member? where !viaMember && !answer.endpoints.isEmpty:
            return .askHost(Array(answer.endpoints.prefix(endpointsAsked)))
        case .member?, .electing?, nil:
            return .nothing
        }
    }
}

// MARK: Answering as a member

public enum MemberAnswer {
    /// What a member tells whoever asks who the host is: where its live link goes, or that it is
    /// finding one (while it has no link, or while its role is changing).
    public static func redirect(linkedHost: String?, switching: Bool, epoch: Int?, me: NodeID, ordinal: Int?) -> Redirect {
        if !switching, let linkedHost {
            return Redirect(endpoints: [linkedHost], role: .member, epoch: epoch, node: me, ordinal: ordinal)
        }
        return Redirect(endpoints: [], role: .electing, epoch: epoch, node: me, ordinal: ordinal)
    }
}
