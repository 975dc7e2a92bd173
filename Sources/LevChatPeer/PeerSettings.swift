import LevChatAvahi
import LevChatCore
import LevChatTransport
import Logging

/// Everything a peer needs besides its role: who it is, where it listens, and the tunable timings.
public struct PeerSettings: Sendable {
    public var name: String
    /// The user chose `name` (`--name`); one that is the login name gives way to `name-2` and on
    /// when it is taken (`FirstJoin`).
    public var nameIsChosen = true
    public var bindHost: String
    public var port: Int
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
    /// Where `/get` puts files unless told (`--downloads`; nil: the XDG download directory,
    /// else ~/Downloads).
    public var downloads: String?
    /// At most this many bytes a second to each fetcher of this peer's files (nil: as fast as the
    /// link goes). `LEVCHAT_FILE_RATE_BYTES`; the tests slow a transfer down with it to cut it.
    public var fileRate: Int?
    /// The faster cipher this peer offers and accepts for a file's bytes (nil: ChaCha20-Poly1305
    /// only): AES-256-GCM when this machine has AES in hardware (`FileCipher.fastest`).
    /// `LEVCHAT_FILE_CIPHER` chooses by hand (the bench compares the two).
    public var fileCipher: LinkCipher? = FileCipher.fastest
    /// The files this user offered in earlier runs, served again when asked (nil: a throwaway
    /// identity, or a test's peer: offers last as long as the run).
    public var offeredFiles: OfferedFilesBook?
    /// Where links come from: TCP, or an in-process test's switchboard (Docs/TESTING.md).
    public var network: any LinkNetwork = TCPNetwork()
    /// Every timer's and state machine's time: the network's (the system's, or a test's virtual
    /// clock).
    public var clock: PeerClock { network.clock }
    /// How rooms are advertised and found: avahi-daemon, or an in-process test's fake.
    public var discovery: @Sendable (Logger) -> any RoomDiscovery = { FallbackDiscovery(logger: $0) }

    public init(name: String, bindHost: String = "::", port: Int = 0,
                timings: RoomTimings = RoomTimings(), limits: RoomLimits = RoomLimits(),
                connectTimeout: Duration = .seconds(3)) {
        self.name = name
        self.bindHost = bindHost
        self.port = port
        self.timings = timings
        self.limits = limits
        self.connectTimeout = connectTimeout
    }
}
