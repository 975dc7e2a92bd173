import Synchronization

/// A flag that is set once and read from any thread: a timer cancelled before it fires
/// (`PeerClock`), an mDNS link that said goodbye and answers no more (`MulticastDNSLink`).
public final class OnceFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public var isSet: Bool { flag.load(ordering: .acquiring) }
    public func set() { flag.store(true, ordering: .releasing) }
}
