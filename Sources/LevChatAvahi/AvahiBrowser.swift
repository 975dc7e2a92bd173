import CAvahi
import Dispatch
import LevChatCore
#if canImport(Glibc)
import Glibc
#endif

/// Browses `_levchat._tcp` and resolves every instance on every interface and protocol; each
/// resolution (one address) becomes a `.found`.
final class AvahiBrowser: @unchecked Sendable {
    /// Only yields plain Swift values; reached from C callbacks through `userdata`.
    final class Sink: Sendable {
        let continuation: AsyncStream<DiscoveryEvent>.Continuation
        init(_ continuation: AsyncStream<DiscoveryEvent>.Continuation) { self.continuation = continuation }
        var pointer: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }
    }

    private let connection: AvahiConnection
    private let sink: Sink
    let events: AsyncStream<DiscoveryEvent>

    init() throws(DiscoveryError) {
        let (stream, continuation) = AsyncStream.makeStream(of: DiscoveryEvent.self)
        events = stream
        let sink = Sink(continuation)
        self.sink = sink
        connection = try AvahiConnection(waitForDaemon: false, context: sink.pointer, callback: browserClientCallback)
        let created = connection.withLock { () -> Bool in
            guard let client = connection.client else { return false }
            return avahi_service_browser_new(
                client, AvahiIfIndex(AVAHI_IF_UNSPEC), AvahiProtocol(AVAHI_PROTO_UNSPEC),
                RoomAdvertisement.serviceType, nil, AvahiLookupFlags(rawValue: 0), browseCallback, sink.pointer) != nil
        }
        guard created else {
            connection.close()
            throw .other(code: Int32(AVAHI_ERR_FAILURE), message: "could not start browsing")
        }
        // The stream owns the connection and the sink that C callbacks point at: both live until
        // the consumer stops listening. (Never finish the stream from a callback: closing stops the
        // poll thread, which cannot be done from that thread.)
        //
        // The close runs on another thread (one of Dispatch's): `onTermination` is called by
        // whoever cancels the consumer, with the stream's and the task's locks held, while the poll
        // thread may be inside a callback (holding the poll lock) yielding into this very stream and
        // waiting for those locks. Stopping the poll from here would wait for the poll lock: a deadlock seen
        // when `join` ended while a resolution was arriving.
        continuation.onTermination = { [connection, sink] _ in
            DispatchQueue.global().async {
                connection.close()
                withExtendedLifetime(sink) {}
            }
        }
    }
}

private let browserClientCallback: AvahiClientCallback = { client, state, userdata in
    guard let client, let userdata, state == AVAHI_CLIENT_FAILURE else { return }
    let sink = Unmanaged<AvahiBrowser.Sink>.fromOpaque(userdata).takeUnretainedValue()
    sink.continuation.yield(.failed(DiscoveryError(avahiError: avahi_client_errno(client))))
}

private let browseCallback: AvahiServiceBrowserCallback = { browser, interface, proto, event, name, type, domain, _, userdata in
    guard let browser, let userdata, let name else { return }
    let sink = Unmanaged<AvahiBrowser.Sink>.fromOpaque(userdata).takeUnretainedValue()
    switch event {
    case AVAHI_BROWSER_NEW:
        // Resolve on the same interface and protocol; the resolver frees itself in its callback.
        _ = avahi_service_resolver_new(
            avahi_service_browser_get_client(browser), interface, proto, name, type, domain,
            proto, AvahiLookupFlags(rawValue: 0), resolveCallback, userdata)
    case AVAHI_BROWSER_REMOVE:
        sink.continuation.yield(.removed(instanceName: String(cString: name)))
    case AVAHI_BROWSER_FAILURE:
        let client = avahi_service_browser_get_client(browser)
        sink.continuation.yield(.failed(DiscoveryError(avahiError: avahi_client_errno(client))))
    default:
        break
    }
}

private let resolveCallback: AvahiServiceResolverCallback = { resolver, interface, _, event, name, _, _, hostName, address, port, txt, _, userdata in
    defer { if let resolver { avahi_service_resolver_free(resolver) } }
    guard event == AVAHI_RESOLVER_FOUND, let userdata, let name, let address else { return }
    let sink = Unmanaged<AvahiBrowser.Sink>.fromOpaque(userdata).takeUnretainedValue()
    var text = [CChar](repeating: 0, count: Int(AVAHI_ADDRESS_STR_MAX))
    avahi_address_snprint(&text, text.count, address)
    var literal = text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    // An IPv6 link-local address is only usable with its interface.
    if literal.lowercased().hasPrefix("fe80:") {
        var interfaceName = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        if if_indextoname(UInt32(bitPattern: interface), &interfaceName) != nil {
            literal += "%" + interfaceName.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
    }
    var pairs: [String: String] = [:]
    var entry = txt
    while let current = entry {
        let size = Int(avahi_string_list_get_size(current))
        if let bytes = avahi_string_list_get_text(current), size <= 255 {
            let item = String(decoding: UnsafeBufferPointer(start: bytes, count: size), as: UTF8.self)
            if let equals = item.firstIndex(of: "=") {
                pairs[String(item[..<equals])] = String(item[item.index(after: equals)...])
            }
        }
        entry = avahi_string_list_get_next(current)
    }
    sink.continuation.yield(.found(DiscoveredService(
        instanceName: String(cString: name), hostName: hostName.map { String(cString: $0) } ?? "",
        address: literal, port: Int(port), txt: pairs)))
}
