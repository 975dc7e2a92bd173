/// A point in time as the state machines see it: a monotonic reading for timeouts and a wall
/// clock for the timestamps people read. Tests pass a fake one.
public struct Moment: Sendable, Hashable {
    public var monotonic: Duration
    public var wallMillis: Int64
    public init(monotonic: Duration, wallMillis: Int64) {
        self.monotonic = monotonic
        self.wallMillis = wallMillis
    }
}

/// Liveness timing (Docs/MIGRATION.md). Settings so tests can run them fast.
public struct RoomTimings: Sendable, Hashable {
    /// A link with nothing else to send sends a ping this often.
    public var heartbeat: Duration
    /// A link silent this long is dead.
    public var deadAfter: Duration
    /// A connection that has not finished the handshake by then is closed.
    public var handshakeTimeout: Duration

    public init(heartbeat: Duration = .seconds(1), deadAfter: Duration = .seconds(4), handshakeTimeout: Duration = .seconds(10)) {
        self.heartbeat = heartbeat
        self.deadAfter = deadAfter
        self.handshakeTimeout = handshakeTimeout
    }
}

extension RoomTimings {
    /// Two ticks this far apart mean this peer itself was not running: stopped, suspended, or
    /// starved of CPU (300 peers on two cores). What its links sent meanwhile may still be unread
    /// in its sockets, so that silence is not held against them: each link gets a whole
    /// `deadAfter` from the waking tick (Docs/MIGRATION.md, "Liveness").
    public var freezeGap: Duration { deadAfter / 2 }

    /// Whether a tick at `now`, after one at `previousTick`, is this peer waking from a freeze.
    func woke(previousTick: Duration?, now: Duration) -> Bool {
        previousTick.map { now - $0 >= freezeGap } ?? false
    }
}

public struct RoomLimits: Sendable, Hashable {
    public var maxTextBytes: Int
    public var historyCount: Int
    public var historyBytes: Int
    public var maxMembers: Int
    /// Unsent bytes the host lets pile up for one member before it drops that member as too slow.
    public var sendBacklogBytes: Int
    /// A member's own lines that no host has echoed yet, at most: past this window (count or
    /// text bytes) it stops reading its input until echoes come back (Docs/PROTOCOL.md, "Flow
    /// control"). The host's own input is paced by the same count and by bytes (the lesser of
    /// this and a quarter of `sendBacklogBytes`): its lines not yet written to every member's
    /// socket.
    public var sendWindowCount: Int
    public var sendWindowBytes: Int
    /// Arrivals per address and per member, and places per address (`ChurnLimiter`).
    public var churn = ChurnLimiter.Policy()

    public init(maxTextBytes: Int = 4096, historyCount: Int = 1000, historyBytes: Int = 1 << 20, maxMembers: Int = 512,
                sendBacklogBytes: Int = 4 << 20, sendWindowCount: Int = 256, sendWindowBytes: Int = 256 << 10) {
        self.sendWindowCount = sendWindowCount
        self.sendWindowBytes = sendWindowBytes
        self.maxTextBytes = maxTextBytes
        self.historyCount = historyCount
        self.historyBytes = historyBytes
        self.maxMembers = maxMembers
        self.sendBacklogBytes = sendBacklogBytes
    }
}
