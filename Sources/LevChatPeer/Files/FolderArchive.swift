#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LevChatCore

/// A folder to and from one ustar archive (`Ustar` in the core has the format and its checks).
/// The sending side never writes the archive: `FolderSource` makes its bytes as they are read.
/// Unpacking creates everything under a folder it made itself, never follows a link (there are
/// none it did not refuse) and never overwrites (`O_EXCL`).
enum FolderArchive {
    enum Failure: Error, Equatable, CustomStringConvertible {
        case archive(Ustar.ArchiveError)
        case io(String, Int32)
        /// A file of an offered folder is not as it was when offered.
        case changed(String)
        var description: String {
            switch self {
            case .archive(let error): error.description
            case .io(let what, let code): "\(what): \(String(cString: strerror(code)))"
            case .changed(let what): what
            }
        }
    }

    /// Writes `folder`'s archive into `out` (open for writing), as `FolderSource` reads it; returns
    /// how many entries it left out.
    static func pack(_ folder: String, into out: Int32) throws(Failure) -> Int {
        let source = try FolderSource(folder)
        try source.readWhole { bytes throws(Failure) in
            if let code = FileDesk.write(out, bytes) { throw .io("cannot write the archive", code) }
        }
        return source.skipped
    }

    /// Creates `root` (which must not exist) and everything the archive holds under it. On any
    /// failure the caller removes `root`.
    static func unpack(_ archive: String, into root: String) throws(Failure) {
        let input = open(archive, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw .io("cannot read \(archive)", errno) }
        defer { close(input) }
        guard mkdir(root, 0o777) == 0 else { throw .io("cannot make \(root)", errno) }
        var block = [UInt8](repeating: 0, count: Ustar.block)
        while true {
            let count = try read(input, into: &block)
            if count == 0 { return }  // the end, without the closing blocks: what came is whole
            guard count == Ustar.block else { throw .archive(.truncated) }
            let entry: (path: [String], kind: Ustar.Kind)?
            do { entry = try Ustar.entry(block) } catch { throw .archive(error) }
            guard let entry else { return }
            let parent = try makeFolders(entry.path.dropLast(), under: root)
            let path = parent + "/" + entry.path.last!
            switch entry.kind {
            case .directory:
                if mkdir(path, 0o777) != 0 && errno != EEXIST { throw .io("cannot make \(path)", errno) }
                try requireFolder(path)
            case .file(let size):
                let out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666)
                guard out >= 0 else { throw .io("cannot create \(path)", errno) }
                defer { close(out) }
                try copy(size, from: input, to: out, writing: path, cutShort: .archive(.truncated))
                let padding = Ustar.padding(after: size)
                if padding > 0 {
                    var pad = [UInt8](repeating: 0, count: padding)
                    guard try read(input, into: &pad) == padding else { throw .archive(.truncated) }
                }
            }
        }
    }

    private static func header(_ path: String, _ kind: Ustar.Kind, _ mode: Int, _ mtime: Int) throws(Failure) -> [UInt8] {
        do { return try Ustar.header(path: path, kind: kind, mode: mode, mtime: mtime) } catch { throw .archive(error) }
    }

    /// The folders of `components` under `root`, made where missing; each must be a real folder
    /// (not a link), so nothing can lead out of `root`.
    private static func makeFolders(_ components: ArraySlice<String>, under root: String) throws(Failure) -> String {
        var path = root
        for component in components {
            path += "/" + component
            if mkdir(path, 0o777) != 0 && errno != EEXIST { throw .io("cannot make \(path)", errno) }
            try requireFolder(path)
        }
        return path
    }

    private static func requireFolder(_ path: String) throws(Failure) {
        var status = stat()
        guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else { throw .io("\(path) is not a folder", EEXIST) }
    }

    /// Copies `size` bytes from `input` to `out` (unpacking an entry); `cutShort` when `input`
    /// ends or fails first. In the kernel where it can (`copy_file_range`: one copy between the
    /// two files' pages, none through this process), else through a buffer no larger than the
    /// entry (a folder of many small files must not zero a mebibyte for each).
    private static func copy(_ size: Int, from input: Int32, to out: Int32, writing what: String, cutShort: Failure) throws(Failure) {
        var left = size
        if let copyFileRange = Self.copyFileRange {
            while left > 0 {
                let got = copyFileRange(input, nil, out, nil, left, 0)
                if got < 0 {
                    if errno == EINTR { continue }
                    // Not between these two files (another file system on an old kernel, or
                    // one that cannot): the buffer below does it.
                    if [ENOSYS, EXDEV, EINVAL, EOPNOTSUPP].contains(errno) { break }
                    throw .io("cannot write \(what)", errno)
                }
                guard got > 0 else { throw cutShort }
                left -= got
            }
        }
        guard left > 0 else { return }
        var buffer = [UInt8](repeating: 0, count: min(left, 1 << 20))
        while left > 0 {
            let got = buffer.withUnsafeMutableBytes { Glibc.read(input, $0.baseAddress, min(left, $0.count)) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { throw cutShort }
            let failed = buffer.withUnsafeBytes { FileDesk.write(out, UnsafeRawBufferPointer(rebasing: $0[..<got])) }
            if let code = failed { throw .io("cannot write \(what)", code) }
            left -= got
        }
    }

    /// `copy_file_range(2)` (glibc 2.27): declared only under _GNU_SOURCE, which Swift's Glibc
    /// module leaves out, so found by name as `sync_file_range` is.
    static let copyFileRange: (@convention(c) (Int32, UnsafeMutablePointer<Int64>?, Int32, UnsafeMutablePointer<Int64>?, Int, UInt32) -> Int)? = {
        guard let symbol = dlsym(nil, "copy_file_range") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, UnsafeMutablePointer<Int64>?, Int32, UnsafeMutablePointer<Int64>?, Int, UInt32) -> Int).self)
    }()

    /// Reads until `buffer` is full or the end of the file; how many bytes came.
    private static func read(_ fd: Int32, into buffer: inout [UInt8]) throws(Failure) -> Int {
        var filled = 0
        while filled < buffer.count {
            let got = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if got < 0 {
                if errno == EINTR { continue }
                throw .io("cannot read the archive", errno)
            }
            if got == 0 { break }
            filled += got
        }
        return filled
    }
}
