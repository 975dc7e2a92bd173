import LevChatCore
import LevChatTransport
import Synchronization

/// Finds the code's room among the rooms on the network, several at a time (Docs/PROTOCOL.md,
/// "Discovery"): for each room `RoomFinder` offers, it asks "who is the host?" over a CPace link
/// made with the code. A host (or member) that proves the code is in our room; one that refuses it
/// is another room, and none of that room's addresses is tried again. A stale record that never
/// answers costs its own connect timeout, in parallel with the others, never in front of them.
final class RoomMatcher: Sendable {
    struct State {
        /// Endpoints whose peer proved the code, in the order they did.
        var proven: [String] = []
        /// Endpoints that failed for another reason than "wrong code" (unreachable, refused for a
        /// while): offered last, so the join reports why.
        var doubtful: [String] = []
        var running = 0
        /// The checks under way (`stop` cancels them).
        var checks: [Task<Void, Never>] = []
        var stopped = false
    }

    private let finder: RoomFinder
    private let network: any LinkNetwork
    private let keyring: RoomKeyring
    private let timeout: Duration
    private let parallel: Int
    private let me: NodeID
    private let state = Mutex(State())
    /// Wakes `next` when a check ends, discovery offers or withdraws a room, or the deadline comes
    /// (the newest signal is kept, so one sent before `next` waits is not missed).
    private let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))

    init(finder: RoomFinder, network: any LinkNetwork, keyring: RoomKeyring, me: NodeID, timeout: Duration, parallel: Int = 4) {
        self.me = me
        self.network = network
        self.finder = finder
        self.keyring = keyring
        self.timeout = timeout
        self.parallel = parallel
    }

    /// The join is over: the checks still under way are cancelled (each would otherwise run to
    /// its own timeout, spending a host's CPace for nothing).
    func stop() {
        let checks = state.withLock { s in
            s.stopped = true
            return s.checks
        }
        checks.forEach { $0.cancel() }
    }

    /// Discovery offered or withdrew a room.
    func roomsChanged() { wake.yield() }

    /// The next endpoint to join: one whose peer proved the code, else (when nothing is left to
    /// try) one that failed for another reason; nil at the deadline.
    func next(until deadline: Duration) async -> String? {
        let clock = network.clock
        let alarm = Task { [wake] in
            try? await clock.sleep(until: deadline)
            wake.yield()
        }
        defer { alarm.cancel() }
        var signals = wakes.makeAsyncIterator()
        while clock.now().monotonic < deadline {
            let (ready, launch) = state.withLock { s -> (String?, [String]) in
                if !s.proven.isEmpty { return (s.proven.removeFirst(), []) }
                var launch: [String] = []
                while s.running < parallel, let endpoint = finder.nextEndpoint() {
                    s.running += 1
                    launch.append(endpoint)
                }
                if launch.isEmpty && s.running == 0 {
                    // Another address of a host that refused the code is not worth a try.
                    s.doubtful.removeAll { finder.isExcluded($0) }
                    if !s.doubtful.isEmpty { return (s.doubtful.removeFirst(), []) }
                }
                return (nil, launch)
            }
            if let ready { return ready }
            let checks = launch.map { endpoint in Task { await self.check(endpoint) } }
            let stopped = state.withLock { s in
                s.checks.append(contentsOf: checks)
                return s.stopped
            }
            if stopped { checks.forEach { $0.cancel() } }
            guard await signals.next() != nil else { return nil }
        }
        return nil
    }

    private func check(_ endpoint: String) async {
        let (timeout, me) = (self.timeout, self.me)
        let verdict: Verdict
        do throws(ConnectError) {
            verdict = try await SecureLink.connect(to: endpoint, over: network, keyring: keyring, role: "probe",
                                                   connectTimeout: timeout, handshakeTimeout: timeout) { link -> Verdict in
                let deadline = link.closeAfter(timeout)
                defer { deadline.cancel() }
                // The handshake proved the code; the answer only has to arrive.
                _ = try? await link.send(.probe(Probe(node: me)))
                _ = try? await link.receive()
                return .ours
            }
        } catch {
            if case .handshake(.refused(let info)) = error, info.code == ErrorCode.auth.rawValue {
                verdict = .notOurs
            } else if case .handshake(.wrongRoom) = error {
                verdict = .notOurs
            } else {
                verdict = .unsure
            }
        }
        if verdict == .notOurs { finder.notThisRoom(endpoint) }
        state.withLock { s in
            s.running -= 1
            switch verdict {
            case .ours: s.proven.append(endpoint)
            case .notOurs: break
            case .unsure: s.doubtful.append(endpoint)
            }
        }
        wake.yield()
    }

    enum Verdict { case ours, notOurs, unsure }
}
