import LevChatCore
import LevChatTransport

/// Asks peers of the room "who is the host?" over a link that proves the room secret both ways
/// (Docs/MIGRATION.md): one at a time (`probe`) or all at once (`round`). The questions only;
/// what the answers mean is the core's (`HostSearch`, `PartitionHeal`).
struct HostProber: Sendable {
    let network: any LinkNetwork
    let keyring: RoomKeyring
    let me: NodeID
    /// Connect, handshake and answer, all within this.
    private(set) var timeout: Duration

    init(network: any LinkNetwork, keyring: RoomKeyring, me: NodeID, timeout: Duration) {
        self.network = network
        self.keyring = keyring
        self.me = me
        self.timeout = timeout
    }

    /// The same prober, with another timeout (a search that found peers too busy to answer in
    /// time waits longer: `HostSearch.probeTimeout`).
    func waiting(_ timeout: Duration) -> HostProber {
        var prober = self
        prober.timeout = timeout
        return prober
    }

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

    /// Asks the peers in the order given (up to three endpoints each, until one answers), at most
    /// `atOnce` at a time, and yields the answers as they come, for at most twice `timeout`. The
    /// caller may stop reading early, so a silent peer never holds up a decision the others
    /// already settle; the probes still under way are then cancelled, and the rest never start.
    ///
    /// Bounded because a crowd on one machine stampeded: 300 members that lost their host each
    /// asked all 299 others at once (Docs/BENCHMARKS.md, "A crowd on one machine"). `HostSearch`
    /// orders the peers so that those whose answers decide come first.
    func round(_ peers: [Member], atOnce: Int) -> AsyncStream<(Member, HostSearch.Answer)> {
        let (stream, continuation) = AsyncStream.makeStream(of: (Member, HostSearch.Answer).self)
        let probes = Task {
            await withTaskGroup(of: (Member, HostSearch.Answer).self) { group in
                var waiting = peers[...]
                func next() {
                    guard let peer = waiting.popFirst() else { return }
                    group.addTask { (peer, await bestAnswer(from: peer)) }
                }
                for _ in 0..<max(atOnce, 1) { next() }
                while let answered = await group.next() {
                    continuation.yield(answered)
                    if !Task.isCancelled { next() }
                }
            }
            continuation.finish()
        }
        let (timeout, clock) = (self.timeout, network.clock)
        let cap = Task {
            try? await clock.sleep(for: timeout * 2 + .milliseconds(50))
            continuation.finish()
        }
        continuation.onTermination = { _ in
            probes.cancel()
            cap.cancel()
        }
        return stream
    }

    /// The first of a peer's endpoints (three at most) that answers, or how the last one failed.
    private func bestAnswer(from peer: Member) async -> HostSearch.Answer {
        var best = HostSearch.Answer.silent
        for endpoint in peer.endpoints.prefix(3) where !Task.isCancelled {
            let answer = await probe(endpoint)
            if case .silent = answer { continue }
            best = answer
            if case .answered = answer { break }
        }
        return best
    }

    /// A member answers whoever calls it (a joiner with the code, a member with the room secret
    /// finding the next host) with where the host is, or that it is itself finding one
    /// (`MemberAnswer`). A joiner with the code gets that before any CPace: only the host answers
    /// guesses of the code. `askedByMember` hears of each question from a peer that proved the
    /// room secret.
    static func answer(_ connection: FramedChannel, keyring: RoomKeyring, guard addressGuard: AddressGuard, files: FileDesk, timeout: Duration,
                       clock: PeerClock,
                       askedByMember: @escaping @Sendable () async -> Void,
                       whereIsTheHost: @escaping @Sendable () async -> Redirect) async {
        _ = await SecureLink.accept(connection, keyring: keyring, guard: addressGuard, timeout: timeout, clock: clock,
                                    redirectingCodeJoiners: { await whereIsTheHost().withoutWhoAnswered }) { link in
            let deadline = link.closeAfter(timeout)
            defer { deadline.cancel() }
            guard let asked = try? await link.receive() else { return }
            if case .fetch(let fetch) = asked {
                deadline.cancel()
                await files.serve(&link, fetch)
                return
            }
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
