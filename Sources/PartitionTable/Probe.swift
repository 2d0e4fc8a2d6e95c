#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
internal import CBlkid
import DiskImage

/// What libblkid recognises in a byte range: filesystem type, label, UUID, version.
public struct FilesystemSignature: Sendable, Equatable, Codable {
    /// blkid TYPE: "ext4", "squashfs", "erofs", "vfat", "swap", "f2fs", "btrfs", "xfs", ...
    public var type: String
    public var label: String?
    public var uuid: String?
    public var version: String?

    public init(type: String, label: String? = nil, uuid: String? = nil, version: String? = nil) {
        self.type = type
        self.label = label
        self.uuid = uuid
        self.version = version
    }
}

/// Probes byte ranges of an image file with libblkid (superblocks only, like
/// `blkid -p --offset N --size M`). Holds the image's file descriptor; closed in deinit.
public final class FilesystemProber {
    public let path: String
    private let fd: Int32

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw FWError(.io, "cannot open for probing: \(String(cString: strerror(errno)))", disk: path)
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// The filesystem in `size` bytes at `offset`, nil when no signature is found (raw data,
    /// zeros). Ambiguous results (two signatures) throw.
    public func probe(offset: UInt64, size: UInt64) throws -> FilesystemSignature? {
        guard let off = Int64(exactly: offset), let len = Int64(exactly: size), len > 0 else {
            throw FWError(.invalidArgument, "cannot probe bytes \(offset)+\(size)", disk: path)
        }
        let probe = try BlkidProbe(path: path)
        guard blkid_probe_set_device(probe.handle, fd, off, len) == 0 else {
            throw FWError(.io, "libblkid cannot use bytes \(offset)+\(size)", disk: path)
        }
        blkid_probe_enable_partitions(probe.handle, 0)
        blkid_probe_enable_superblocks(probe.handle, 1)
        blkid_probe_set_superblocks_flags(probe.handle,
            Int32(BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID | BLKID_SUBLKS_TYPE | BLKID_SUBLKS_VERSION | BLKID_SUBLKS_BADCSUM))
        switch blkid_do_safeprobe(probe.handle) {
        case 0:
            guard let type = probe.value("TYPE") else { return nil }
            return FilesystemSignature(type: type, label: probe.value("LABEL"), uuid: probe.value("UUID"),
                                       version: probe.value("VERSION"))
        case 1:
            return nil
        case -2:
            throw FWError(.corrupt, "libblkid finds more than one filesystem signature in bytes \(offset)+\(size) (ambiguous)", disk: path)
        default:
            throw FWError(.io, "libblkid failed to probe bytes \(offset)+\(size)", disk: path)
        }
    }
}

/// Owns one `blkid_probe`, freed in deinit.
final class BlkidProbe {
    let handle: blkid_probe

    init(path: String) throws {
        guard let handle = blkid_new_probe() else {
            throw FWError(.io, "libblkid cannot allocate a probe", disk: path)
        }
        self.handle = handle
    }

    deinit { blkid_free_probe(handle) }

    func value(_ name: String) -> String? {
        var data: UnsafePointer<CChar>? = nil
        var length = 0
        guard blkid_probe_lookup_value(handle, name, &data, &length) == 0, let data else { return nil }
        return String(cString: data)
    }
}
