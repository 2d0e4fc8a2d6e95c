#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import DiskImage

/// A sparse in-memory copy of chosen ranges of a virtual disk, for tools that read through a
/// file descriptor (libblkid probing) and cannot read qcow2 or VMDK themselves.
///
/// The file is anonymous (unlinked at once, on /dev/shm, else in /tmp),
/// sized like the virtual disk, with only the copied ranges written (all-zero pieces are left as
/// holes). `path` ("/proc/self/fd/N") opens it again while this object lives.
public final class ProbeCopy {
    public let path: String
    private let fd: Int32

    /// Copies `ranges` (offset, length; clamped to the disk) of `source`.
    public init(of source: any ByteSource, ranges: [(offset: UInt64, length: UInt64)]) throws {
        var fd: Int32 = -1
        for dir in ["/dev/shm", "/tmp"] where fd < 0 {
            var template = Array("\(dir)/fwassemble-probe-XXXXXX".utf8CString)
            fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            if fd >= 0 { template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) } }
        }
        guard fd >= 0 else {
            throw FWError(.io, "cannot create a temporary file for probing: \(String(cString: strerror(errno)))", disk: source.name)
        }
        self.fd = fd
        self.path = "/proc/self/fd/\(fd)"
        guard ftruncate(fd, off_t(source.size)) == 0 else {
            throw FWError(.io, "cannot size the probing copy: \(String(cString: strerror(errno)))", disk: source.name)
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        for range in ranges where range.offset < source.size {
            let end = min(source.size, range.offset.addingReportingOverflow(range.length).overflow ? source.size : range.offset + range.length)
            var at = range.offset
            while at < end {
                let n = Int(min(UInt64(buffer.count), end - at))
                try buffer.withUnsafeMutableBytes { try source.readExactly(at: at, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n])) }
                let written = buffer.withUnsafeBytes { b -> Int in
                    let piece = UnsafeRawBufferPointer(rebasing: b[0..<n])
                    return CompressedWrappers.isZero(piece) ? n : pwrite(fd, piece.baseAddress!, n, off_t(at))
                }
                guard written == n else {
                    throw FWError(.io, "cannot write the probing copy: \(String(cString: strerror(errno)))", disk: source.name)
                }
                at += UInt64(n)
            }
        }
    }

    deinit { close(fd) }
}
