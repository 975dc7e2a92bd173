/// What a host advertises over DNS-SD (DESIGN §3): one instance per (room, host), and a small TXT
/// record with no code, no names and nothing secret.
public struct RoomAdvertisement: Hashable, Sendable {
    public static let serviceType = "_levchat._tcp"
    public static let txtVersion = "1"

    public var instanceName: String
    public var tag: [UInt8]
    public var salt: [UInt8]
    public var epoch: Int
    public var versions: VersionRange
    public var port: Int
    /// scrypt's log2 N for this room. The tag depends on it, so joiners must use the same; absent
    /// means the production 16.
    public var kdfLogN: Int

    public init(keys: RoomKeys, host: NodeID, epoch: Int, port: Int, versions: VersionRange = ProtocolVersion.range) {
        tag = keys.tag
        salt = keys.salt
        kdfLogN = keys.cost.logN
        self.epoch = epoch
        self.versions = versions
        self.port = port
        instanceName = "lc-\(keys.tag.hexString)-\(host.hex.prefix(8))"
    }

    /// `txtvers=1 pv=1-1 rs=<salt hex> rt=<tag hex> ep=<epoch>`, and `kc=<log2 N>` when it is not 16.
    public var txtRecord: [String] {
        ["txtvers=\(Self.txtVersion)", "pv=\(versions.min)-\(versions.max)", "rs=\(salt.hexString)",
         "rt=\(tag.hexString)", "ep=\(epoch)"] + (kdfLogN == KDFCost.production.logN ? [] : ["kc=\(kdfLogN)"])
    }

    /// Whether this advertisement is the room these keys belong to (same salt, cost and tag).
    public func matches(_ keys: RoomKeys) -> Bool {
        keys.salt == salt && keys.cost.logN == kdfLogN && constantTimeEqual(keys.tag, tag)
    }

    /// Reads a discovered service's TXT pairs. Nil for anything that is not a well-formed room of a
    /// TXT version we know: junk advertisements are skipped, never trusted.
    public init?(instanceName: String, port: Int, txt: [String: String]) {
        guard txt["txtvers"] == Self.txtVersion,
              let pv = txt["pv"], let dash = pv.firstIndex(of: "-"),
              let low = Int(pv[..<dash]), let high = Int(pv[pv.index(after: dash)...]), low <= high,
              let salt = txt["rs"].flatMap(Self.bytes(hex:)), salt.count == RoomKeys.saltLength,
              let tag = txt["rt"].flatMap(Self.bytes(hex:)), tag.count == 8,
              let epochText = txt["ep"], epochText.count <= 18, let epoch = Int(epochText), epoch >= 0,
              (1...65535).contains(port)
        else { return nil }
        let logN = txt["kc"].map { Int($0) ?? -1 } ?? KDFCost.production.logN
        guard (1...KDFCost.maximumLogN).contains(logN) else { return nil }
        kdfLogN = logN
        self.instanceName = instanceName
        self.tag = tag
        self.salt = salt
        self.epoch = epoch
        self.versions = VersionRange(min: low, max: high)
        self.port = port
    }

    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let high = nibble(digits[i]), let low = nibble(digits[i + 1]) else { return nil }
            out.append(high << 4 | low)
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        case 65...70: c - 55
        default: nil
        }
    }
}

/// One resolved DNS-SD service instance: where to connect, and its TXT pairs.
public struct DiscoveredService: Hashable, Sendable {
    public var instanceName: String
    public var hostName: String
    /// A literal address; IPv6 link-local ones carry their scope (`fe80::1%lan0`).
    public var address: String
    public var port: Int
    public var txt: [String: String]

    public init(instanceName: String, hostName: String, address: String, port: Int, txt: [String: String]) {
        self.instanceName = instanceName
        self.hostName = hostName
        self.address = address
        self.port = port
        self.txt = txt
    }
}

public enum DiscoveryEvent: Hashable, Sendable {
    case found(DiscoveredService)
    case removed(instanceName: String)
    /// Browsing stopped (the daemon went away).
    case failed(DiscoveryError)
}

public enum DiscoveryError: Error, Hashable, Sendable, CustomStringConvertible {
    /// avahi-daemon is not running (Avahi error -26).
    case daemonNotRunning
    /// The connection to avahi-daemon failed or was lost (Avahi error -23).
    case daemonConnectionFailed
    case other(code: Int32, message: String)

    public var description: String {
        switch self {
        case .daemonNotRunning: "avahi-daemon is not running"
        case .daemonConnectionFailed: "the connection to avahi-daemon failed"
        case .other(let code, let message): "Avahi error \(code): \(message)"
        }
    }
}

/// Advertising and finding rooms. The Avahi implementation lives in LevChatAvahi; tests of the
/// room logic can use a fake.
public protocol RoomDiscovery: Sendable {
    /// Starts advertising; the returned handle updates or withdraws it. Keeps advertising across
    /// daemon restarts.
    func advertise(_ advertisement: RoomAdvertisement) async throws(DiscoveryError) -> any RoomAdvertising
    /// Services of `RoomAdvertisement.serviceType` as they appear and disappear.
    func browse() async throws(DiscoveryError) -> AsyncStream<DiscoveryEvent>
}

public protocol RoomAdvertising: Sendable {
    func update(_ advertisement: RoomAdvertisement) async
    /// Removes the advertisement; other hosts see it go within about a second.
    func withdraw() async
}
