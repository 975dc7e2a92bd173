import LevChatCore

/// Everything a peer needs besides its role: who it is, where it listens, and the tunable timings.
public struct PeerSettings: Sendable {
    public var name: String
    public var bindHost: String
    public var port: Int
    public var json: Bool
    public var timings: RoomTimings
    public var limits: RoomLimits
    /// Online guessing limits of the room's hosts (Docs/THREAT-MODEL.md).
    public var guessing = FailureLimiter.Policy()
    /// The room-wide budget of wrong answers to the code, per peer that answers joiners.
    public var guessBudget = GuessBudget.Policy()
    /// The length of a new room's code (`create --code-length`): 6, 9 or 12.
    public var codeLength = RoomCode.length
    /// How long a joiner waits for a TCP connect to answer.
    public var connectTimeout: Duration
    /// How long `join` looks for the room on the network.
    public var discoveryTimeout: Duration = .seconds(5)
    /// After losing the host, the member of rank r (0 = next in line) waits r × this before it
    /// promotes itself, so that a senior that is alive gets there first.
    public var succession = Succession()

    public init(name: String, bindHost: String = "::", port: Int = 0, json: Bool = false,
                timings: RoomTimings = RoomTimings(), limits: RoomLimits = RoomLimits(),
                connectTimeout: Duration = .seconds(3)) {
        self.name = name
        self.bindHost = bindHost
        self.port = port
        self.json = json
        self.timings = timings
        self.limits = limits
        self.connectTimeout = connectTimeout
    }
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
    public init() {}
}

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
    case other(String)
}
