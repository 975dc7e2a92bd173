import LevChatCore
import LevChatTransport
import Logging
import NIOCore

/// The member role: one authenticated link to the host, carried by the `MemberSession` state
/// machine. The reader runs in the connection's own task; a writer, a ticker and the user's input
/// run beside it. Every ending finishes the outbound queue, the writer then closes the link, and
/// the reader sees the end: one way out.
public actor MemberService {
    private var session: MemberSession
    private var queue: OutboundQueue?
    private var outcome: PeerOutcome?
    private var roomKeys: RoomKeys?
    private var hostEndpoint: String?
    private let keyring: RoomKeyring
    private let settings: PeerSettings
    private let console: Console
    private let logger: Logger
    private let clock = PeerClock()

    public init(keyring: RoomKeyring, settings: PeerSettings, console: Console, logger: Logger) {
        self.keyring = keyring
        self.settings = settings
        self.console = console
        self.logger = logger
        session = MemberSession(me: NodeID.random(), name: settings.name, now: PeerClock().now(),
                                limits: settings.limits, timings: settings.timings)
    }

    /// Joins the room at the first candidate that answers and proves the code, then chats until the
    /// user leaves or the room ends. `nextCandidate` gives `host:port` endpoints, best first, and
    /// nil when there are no more.
    public func run(nextCandidate: @escaping @Sendable () async -> String?, input: AsyncStream<UserInput>) async -> PeerOutcome {
        let listener: FramedListener
        do {
            listener = try await Transport.listen(host: settings.bindHost, port: settings.port)
        } catch {
            return .connectFailed(.other("could not open a listening port on \(settings.bindHost): \(ConnectError.describe(error))"))
        }
        let listenPort = listener.channel.localAddress?.port ?? 0
        return await withDiscardingTaskGroup { group in
            group.addTask { await self.acceptRedirects(listener) }
            defer { group.cancelAll() }
            var lastFailure: ConnectFailure?
            while let endpoint = await nextCandidate() {
                guard let (host, port) = Endpoint.parse(endpoint) else { continue }
                let connection: FramedChannel
                do throws(ConnectError) {
                    connection = try await Transport.connect(host: host, port: port, timeout: settings.connectTimeout)
                } catch {
                    logger.info("\(error)")
                    lastFailure = .unreachable(error.description)
                    continue
                }
                if let failure = await converse(over: connection, endpoint: endpoint, listenPort: listenPort, input: input) {
                    logger.info("\(endpoint): \(failure)")
                    lastFailure = failure
                    continue
                }
                return outcome ?? .hostLost("the connection to the host closed")
            }
            return lastFailure.map(PeerOutcome.connectFailed) ?? .roomNotFound
        }
    }

    /// Runs one connection. Returns the failure when the handshake did not succeed (the caller may
    /// try another candidate); otherwise the session ran and `outcome` says how it ended.
    private nonisolated func converse(over connection: FramedChannel, endpoint: String, listenPort: Int,
                                      input: AsyncStream<UserInput>) async -> ConnectFailure? {
        let channel = connection.channel
        do {
            return try await connection.executeThenClose { inbound, outbound -> ConnectFailure? in
                var frames = FrameReader(inbound)
                let joined: (ciphers: SessionCiphers, keys: RoomKeys)
                do throws(ConnectError) {
                    joined = try await SecureHandshake.join(
                        frames: &frames, outbound: outbound, channel: channel, keyring: keyring,
                        timeout: settings.timings.handshakeTimeout)
                } catch {
                    return MemberService.classify(error, endpoint: endpoint)
                }
                let queue = OutboundQueue()
                await start(queue: queue, keys: joined.keys, hostEndpoint: endpoint, listenPort: listenPort)
                await withDiscardingTaskGroup { group in
                    group.addTask {
                        try? await SecureWriter.drain(queue, sealer: joined.ciphers.sealer, to: outbound)
                        channel.close(promise: nil)
                    }
                    group.addTask { await self.tickUntilEnded() }
                    group.addTask { await self.consume(input) }
                    var reader = SecureReader(frames: frames, opener: joined.ciphers.opener)
                    do {
                        while let message = try await reader.next() { await received(message) }
                        await linkClosed()
                    } catch {
                        await perform([.ended(.protocolViolation("the link to the host failed: \(error)"))])
                    }
                    group.cancelAll()
                }
                return nil
            }
        } catch {
            return nil
        }
    }

    private func start(queue: OutboundQueue, keys: RoomKeys, hostEndpoint: String, listenPort: Int) {
        self.queue = queue
        roomKeys = keys
        self.hostEndpoint = hostEndpoint
        perform([.send(session.joinRequest(listenPort: listenPort, endpoints: [], now: clock.now()))])
    }

    private func linkClosed() {
        perform(session.linkClosed())
    }

    private func received(_ message: WireMessage) {
        perform(session.received(message, now: clock.now()))
    }

    private func consume(_ input: AsyncStream<UserInput>) async {
        for await event in input {
            guard outcome == nil else { return }
            if case .line(let text) = event, handle(InputLine(parsing: text)) { continue }
            break
        }
        await leave()
    }

    /// Returns false when the user wants to leave.
    private func handle(_ line: InputLine) -> Bool {
        switch console.answerCommon(line) {
        case .say(let text)?: perform(session.post(text, now: clock.now()))
        case .who?:
            if let roster = session.roster { console.showMembers(roster, you: session.me) }
            else { console.show(.notice("still joining the room")) }
        case .quit?: return false
        default: break
        }
        return true
    }

    /// Leaves only after the host echoed everything this member typed (or the link died).
    private func leave() async {
        let clock = ContinuousClock()
        let deadline = clock.now + settings.timings.deadAfter + .seconds(1)
        while outcome == nil && !session.outbox.isEmpty && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        guard outcome == nil else { return }
        let undelivered = session.outbox.count
        perform(session.leave())
        finish(undelivered == 0 ? .left : .leftWithUndelivered(undelivered))
    }

    private func tickUntilEnded() async {
        let interval = max(settings.timings.heartbeat / 4, .milliseconds(10))
        while outcome == nil && !Task.isCancelled {
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
                switch ending {
                case .roomClosed: finish(.roomClosed)
                case .hostLost(let why): finish(.hostLost(why))
                case .refused(let info): finish(.refused(info))
                case .protocolViolation(let why): finish(.protocolViolation(why))
                }
            }
        }
    }

    private func finish(_ result: PeerOutcome) {
        if outcome == nil { outcome = result }
        queue?.finish()
    }

    /// Every member listens so that it can become host later; until then anyone who proves the
    /// code here is pointed at the host.
    private nonisolated func acceptRedirects(_ listener: FramedListener) async {
        try? await listener.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { group in
                for try await connection in inbound {
                    group.addTask { await self.redirect(connection) }
                }
            }
        }
    }

    private nonisolated func redirect(_ connection: FramedChannel) async {
        guard let (keys, host) = await redirectTarget() else {
            connection.channel.close(promise: nil)
            return
        }
        let channel = connection.channel
        try? await connection.executeThenClose { inbound, outbound -> Void in
            var frames = FrameReader(inbound)
            guard let ciphers = try? await SecureHandshake.accept(
                frames: &frames, outbound: outbound, channel: channel, keys: keys,
                timeout: settings.timings.handshakeTimeout)
            else { return }
            var sealer = ciphers.sealer
            let record = try sealer.seal(WireMessage.redirect(Redirect(endpoints: [host])).encoded())
            try await outbound.write(ByteBuffer(bytes: record))
        }
    }

    private func redirectTarget() -> (RoomKeys, String)? {
        guard let roomKeys, let hostEndpoint else { return nil }
        return (roomKeys, hostEndpoint)
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
            case .versionMismatch: return .incompatible("the peer at \(endpoint) speaks another protocol version")
            case .hostProofInvalid, .weakKeyDerivation:
                return .impostor("the peer at \(endpoint) could not prove it knows the room code: \(failure)")
            case .timedOut: return .unreachable("\(endpoint) did not answer the handshake")
            case .closedEarly: return .unreachable("\(endpoint) closed the connection during the handshake")
            default: return .other("handshake with \(endpoint) failed: \(failure)")
            }
        }
    }
}
