import LevChatCore
import LevChatTransport
import Logging
import NIOCore

/// The member role: one authenticated link at a time to a host, carried by the `MemberSession`
/// state machine, which outlives the link so that the next host gets this member's log and
/// outbox. The reader runs in the connection's own task; a writer and a ticker run beside it.
/// Every ending finishes the outbound queue, the writer then closes the link, and the reader sees
/// the end: one way out.
public actor MemberService {
    public enum LinkResult: Sendable {
        /// No session: nothing answered, or the handshake failed.
        case failed(ConnectFailure)
        /// The session ran (or was refused) and ended like this.
        case ended(MemberSession.Ending)
        /// The user left.
        case left(PeerOutcome)
    }

    public private(set) var session: MemberSession
    private var queue: OutboundQueue?
    private var ending: MemberSession.Ending?
    private var leftWith: PeerOutcome?
    public private(set) var hostEndpoint: String?
    private let keyring: RoomKeyring
    private let settings: PeerSettings
    private let console: Console
    private let logger: Logger
    private let clock = PeerClock()

    public init(session: MemberSession, keyring: RoomKeyring, settings: PeerSettings, console: Console, logger: Logger) {
        self.session = session
        self.keyring = keyring
        self.settings = settings
        self.console = console
        self.logger = logger
    }

    /// Linked to a host right now.
    public var isLinked: Bool { queue != nil && session.isJoined }

    /// Connects to `endpoint`, joins (or resumes) and runs the session until it ends.
    public func link(to endpoint: String, listenPort: Int, timeout: Duration) async -> LinkResult {
        if let leftWith { return .left(leftWith) }
        do throws(ConnectError) {
            try await connectAndConverse(endpoint: endpoint, listenPort: listenPort, timeout: timeout)
        } catch {
            logger.info("\(endpoint): \(error)")
            return .failed(MemberService.classify(error, endpoint: endpoint))
        }
        queue = nil
        hostEndpoint = nil
        if let leftWith { return .left(leftWith) }
        return .ended(ending ?? .hostLost("the connection to the host closed"))
    }

    private nonisolated func connectAndConverse(endpoint: String, listenPort: Int, timeout: Duration) async throws(ConnectError) {
        try await SecureLink.connect(to: endpoint, keyring: keyring, connectTimeout: timeout,
                                     handshakeTimeout: settings.timings.handshakeTimeout) { link in
            await self.converse(over: &link, endpoint: endpoint, listenPort: listenPort)
        }
    }

    /// Runs one authenticated link until the session on it ends: a writer and a ticker beside the
    /// reader; every ending finishes the queue, the writer then closes the link, the reader sees
    /// the end.
    private nonisolated func converse(over link: inout SecureLink, endpoint: String, listenPort: Int) async {
        let queue = OutboundQueue()
        await start(queue: queue, hostEndpoint: endpoint, listenPort: listenPort)
        let (sealer, outbound, channel) = (link.sealer, link.outbound, link.channel)
        var reader = link.reader
        await withDiscardingTaskGroup { group in
            group.addTask {
                try? await SecureWriter.drain(queue, sealer: sealer, to: outbound)
                channel.close(promise: nil)
            }
            group.addTask { await self.tickUntilEnded(queue) }
            do {
                while let message = try await reader.next() {
                    // The welcome gives the key of this host's broadcasts (its epoch, its node).
                    if let broadcasts = await received(message) { reader.expectBroadcasts(broadcasts) }
                }
                await linkClosed()
            } catch {
                await perform([.ended(.hostLost("the link to the host failed: \(error)"))])
            }
            group.cancelAll()
        }
    }

    private func start(queue: OutboundQueue, hostEndpoint: String, listenPort: Int) {
        self.queue = queue
        self.hostEndpoint = hostEndpoint
        ending = nil
        perform([.send(session.connect(listenPort: listenPort, endpoints: [], now: clock.now()))])
    }

    private func linkClosed() {
        perform(session.linkClosed())
    }

    /// The opener for the host's broadcasts, when `message` was the welcome.
    private func received(_ message: WireMessage) -> BroadcastOpener? {
        perform(session.received(message, now: clock.now()))
        guard case .welcome = message, let grant = session.grant, let roster = session.roster, session.isJoined else { return nil }
        // From the first welcome on, this peer can prove itself to the room's next host.
        keyring.learn(grant)
        return BroadcastOpener(grant: grant, epoch: roster.epoch, host: roster.host)
    }

    /// Returns false when the user wants to leave.
    public func handle(_ line: InputLine) -> Bool {
        switch console.answerCommon(line) {
        case .say(let text)?: perform(session.post(text, now: clock.now()))
        case .act(let text)?: perform(session.post(text, kind: .action, now: clock.now()))
        case .nick(let name)?: perform(session.rename(to: name))
        case .who?:
            if let roster = session.roster { console.showMembers(roster, you: session.me) }
            else { console.show(.notice("still joining the room")) }
        case .quit?: return false
        default: break
        }
        return true
    }

    /// Leaves after the host echoed everything this member typed, or after a grace period in which
    /// a host change may still deliver it.
    public func leave() async {
        let clock = ContinuousClock()
        let deadline = clock.now + settings.timings.deadAfter + .seconds(1)
        while session.unconfirmedCount > 0 && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        let undelivered = session.unconfirmedCount
        leftWith = undelivered == 0 ? .left : .leftWithUndelivered(undelivered)
        perform(session.leave())
        queue?.finish()
    }

    /// The user's leaving outcome, once `leave` ran.
    public var leaveOutcome: PeerOutcome? { leftWith }

    /// For a promotion: the session as it stands; this service is done.
    public func detach() -> MemberSession {
        session.abandonLink()
        queue?.finish()
        return session
    }

    private func tickUntilEnded(_ queue: OutboundQueue) async {
        let interval = max(settings.timings.heartbeat / 4, .milliseconds(10))
        while self.queue === queue && ending == nil && !Task.isCancelled {
            try? await Task.sleep(for: interval)
            perform(session.tick(now: clock.now()))
        }
    }

    private func perform(_ actions: [MemberSession.Action]) {
        for action in actions {
            switch action {
            case .send(let message):
                _ = queue?.enqueue(message.encoded())
            case .show(let event):
                console.show(event)
            case .ended(let ending):
                if self.ending == nil { self.ending = ending }
                queue?.finish()
            }
        }
    }

    static func classify(_ error: ConnectError, endpoint: String) -> ConnectFailure {
        switch error {
        case .unreachable(let where_, let why): return .unreachable("could not reach \(where_): \(why)")
        case .handshake(let failure):
            switch failure {
            case .refused(let info) where info.code == ErrorCode.auth.rawValue:
                return .wrongCode("the room at \(endpoint) did not accept the code")
            case .refused(let info) where info.code == ErrorCode.version.rawValue:
                return .incompatible(info.message)
            case .refused(let info) where info.code == ErrorCode.limited.rawValue:
                return .limited("the room at \(endpoint) refuses this address for now: \(info.message)")
            case .wrongRoom: return .wrongCode("the peer at \(endpoint) belongs to another room")
            case .versionMismatch: return .incompatible("the peer at \(endpoint) speaks another protocol version")
            case .hostProofInvalid, .invalidShare:
                return .impostor("the peer at \(endpoint) could not prove it knows the room code: \(failure)")
            case .timedOut: return .unreachable("\(endpoint) did not answer the handshake")
            case .closedEarly: return .unreachable("\(endpoint) closed the connection during the handshake")
            default: return .other("handshake with \(endpoint) failed: \(failure)")
            }
        }
    }
}
