import LevChatCore
import LevChatTransport
import Logging
import Synchronization

/// Finds the room of one code among the `_levchat._tcp` services on the network: derives the key
/// once per distinct salt, keeps the instances whose tag matches, and offers their addresses best
/// first (highest epoch, then IPv4, then IPv6). Junk advertisements are skipped; a forged one that
/// copies a real room's tag fails the handshake later and the joiner moves on.
public final class RoomFinder: Sendable {
    struct Candidate {
        var advertisement: RoomAdvertisement
        var addresses: [String]
    }

    struct State {
        var candidates: [String: Candidate] = [:]
        var tried: Set<String> = []
        var saltsDerived = 0
        var saltsBySource: [String: Int] = [:]
    }

    /// Each distinct salt costs one scrypt. A flood of fake rooms must neither make joining slow
    /// nor crowd out the real room: each advertising address gets a small budget of its own.
    static let maximumSalts = 64
    static let maximumSaltsPerSource = 4

    private let keyring: RoomKeyring
    private let logger: Logger
    private let state = Mutex(State())

    public init(keyring: RoomKeyring, logger: Logger) {
        self.keyring = keyring
        self.logger = logger
    }

    /// Feeds discovery events until the stream ends.
    public func consume(_ events: AsyncStream<DiscoveryEvent>) async {
        for await event in events {
            switch event {
            case .found(let service): consider(service)
            case .removed(let name): state.withLock { _ = $0.candidates.removeValue(forKey: name) }
            case .failed(let error): logger.notice("browsing stopped: \(error)")
            }
        }
    }

    func consider(_ service: DiscoveredService) {
        guard let advertisement = RoomAdvertisement(instanceName: service.instanceName, port: service.port, txt: service.txt) else {
            logger.debug("ignoring \(service.instanceName): not a room advertisement we understand")
            return
        }
        guard advertisement.versions.negotiate(with: ProtocolVersion.range) != nil,
              advertisement.kdfLogN >= keyring.minimumCost.logN else {
            logger.debug("ignoring \(service.instanceName): incompatible version or key cost")
            return
        }
        guard let keys = keys(for: advertisement, from: service.address), advertisement.matches(keys) else { return }
        let endpoint = Endpoint.format(host: service.address, port: service.port)
        state.withLock { s in
            var candidate = s.candidates[service.instanceName] ?? Candidate(advertisement: advertisement, addresses: [])
            candidate.advertisement = advertisement
            if !candidate.addresses.contains(endpoint) { candidate.addresses.append(endpoint) }
            s.candidates[service.instanceName] = candidate
        }
    }

    private func keys(for advertisement: RoomAdvertisement, from source: String) -> RoomKeys? {
        let cost = KDFCost(logN: advertisement.kdfLogN)
        if let known = keyring.cachedKeys(salt: advertisement.salt, cost: cost) { return known }
        let allowed = state.withLock { s -> Bool in
            guard s.saltsDerived < RoomFinder.maximumSalts,
                  s.saltsBySource[source, default: 0] < RoomFinder.maximumSaltsPerSource else { return false }
            s.saltsDerived += 1
            s.saltsBySource[source, default: 0] += 1
            return true
        }
        guard allowed else {
            logger.notice("ignoring \(advertisement.instanceName) from \(source): too many different rooms to check")
            return nil
        }
        return try? keyring.keys(salt: advertisement.salt, cost: cost)
    }

    /// Whether any advertisement matched the code so far.
    public var foundRoom: Bool { state.withLock { !$0.candidates.isEmpty || !$0.tried.isEmpty } }

    /// The best address not tried yet, if any now.
    public func nextEndpoint() -> String? {
        state.withLock { s in
            let ordered = s.candidates.values.sorted { $0.advertisement.epoch > $1.advertisement.epoch }
            for candidate in ordered {
                let addresses = candidate.addresses.sorted { RoomFinder.preference($0) < RoomFinder.preference($1) }
                if let next = addresses.first(where: { !s.tried.contains($0) }) {
                    s.tried.insert(next)
                    return next
                }
            }
            return nil
        }
    }

    static func preference(_ endpoint: String) -> Int {
        if !endpoint.hasPrefix("[") { return 0 }
        return endpoint.lowercased().hasPrefix("[fe80") ? 2 : 1
    }
}
