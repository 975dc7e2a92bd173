import LevChatCore
import LevChatTransport
import Synchronization

/// Asks peers of the room "who is the host?" over a link that proves the room secret both ways
/// (Docs/MIGRATION.md): one at a time (`probe`) or all at once (`round`). The questions only;
/// what the answers mean is the core's (`HostSearch`, `PartitionHeal`).
struct HostProber: Sendable {
    let network: any LinkNetwork
    let keyring: RoomKeyring
    let me: NodeID
    /// Connect, handshake and answer, all within this.
    let timeout: Duration

    /// One question: connect, prove the room secret both ways, ask, read the answer.
    func probe(_ endpoint: String) async -> HostSearch.Answer {
        let (timeout, me) = (self.timeout, self.me)
        do throws(ConnectError) {
            return try await SecureLink.connect(to: endpoint, over: network, keyring: keyring, role: "probe", connectTimeout: timeout,
                                                handshakeTimeout: timeout) { link -> HostSearch.Answer in
                let deadline = link.closeAfter(timeout)
                defer { deadline.cancel() }
                guard (try? await link.send(.probe(Probe(node: me)))) != nil,
                      case .redirect(let redirect)? = try? await link.receive() else { return .silent }
                return .answered(redirect)
            }
        } catch .handshake(.redirected(let redirect)) {
            return .answered(redirect)
        } catch {
            return error.wasRefused ? .refused : .silent
        }
    }

    /// Asks each peer at once (up to three endpoints each, until one answers) and yields the
    /// answers as they come, for at most `timeout`. The caller may stop reading early, so a silent
    /// peer never holds up a decision the others already settle; the probes still under way are
    /// then cancelled.
    func round(_ peers: [Member]) -> AsyncStream<(Member, HostSearch.Answer)> {
        let (stream, continuation) = AsyncStream.makeStream(of: (Member, HostSearch.Answer).self)
        let remaining = Countdown(peers.count)
        if peers.isEmpty { continuation.finish() }
        var tasks = peers.map { peer in
            Task {
                var best = HostSearch.Answer.silent
                for endpoint in peer.endpoints.prefix(3) where !Task.isCancelled {
                    let answer = await probe(endpoint)
                    if case .silent = answer { continue }
                    best = answer
                    if case .answered = answer { break }
                }
                continuation.yield((peer, best))
                if remaining.tick() { continuation.finish() }
            }
        }
        let timeout = self.timeout
        tasks.append(Task {
            try? await Task.sleep(for: timeout + .milliseconds(50))
            continuation.finish()
        })
        let round = tasks
        continuation.onTermination = { _ in round.forEach { $0.cancel() } }
        return stream
    }

    /// A member answers whoever calls it (a joiner with the code, a member with the room secret
    /// finding the next host) with where the host is, or that it is itself finding one
    /// (`MemberAnswer`). A joiner with the code gets that before any CPace: only the host answers
    /// guesses of the code. `askedByMember` hears of each question from a peer that proved the
    /// room secret.
    static func answer(_ connection: FramedChannel, keyring: RoomKeyring, guard addressGuard: AddressGuard, timeout: Duration,
                       askedByMember: @escaping @Sendable () async -> Void,
                       whereIsTheHost: @escaping @Sendable () async -> Redirect) async {
        _ = await SecureLink.accept(connection, keyring: keyring, guard: addressGuard, timeout: timeout,
                                    redirectingCodeJoiners: { await whereIsTheHost().withoutWhoAnswered }) { link in
            let deadline = link.closeAfter(timeout)
            defer { deadline.cancel() }
            guard (try? await link.receive()) != nil else { return }
            await askedByMember()
            try? await link.send(.redirect(await whereIsTheHost()))
        }
    }
}

extension Redirect {
    /// For someone who has not proved anything yet: where the host is (as the advertisement says
    /// too), not which member answered.
    var withoutWhoAnswered: Redirect { Redirect(endpoints: endpoints, role: role, epoch: epoch) }
}

/// Counts down from a number; true from `tick` when it reaches zero.
private final class Countdown: Sendable {
    private let left: Mutex<Int>
    init(_ count: Int) { left = Mutex(count) }
    func tick() -> Bool { left.withLock { $0 -= 1; return $0 == 0 } }
}
