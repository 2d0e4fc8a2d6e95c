import DiskImage

/// The vfat mount options that change what an entry looks like: owner and permission masks.
///
/// Linux (fs/fat/inode.c) shows every file as `0777 & ~fmask` (without write bits when
/// ATTR_RO is set) and every directory as `0777 & ~dmask`; `umask` sets both masks; the default
/// for both is the mounting process's umask, 022 here, so directories and files both show 0755.
public struct FATMountOptions: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    /// The last `umask=` given (both masks follow it unless set on their own later).
    public var umask: UInt16
    public var fmask: UInt16
    public var dmask: UInt16

    public init(uid: UInt32 = 0, gid: UInt32 = 0, umask: UInt16 = 0o022, fmask: UInt16? = nil, dmask: UInt16? = nil) {
        self.uid = uid
        self.gid = gid
        self.umask = umask & 0o777
        self.fmask = (fmask ?? umask) & 0o777
        self.dmask = (dmask ?? umask) & 0o777
    }

    /// Parses a mount option string ("uid=1000,gid=1000,umask=077,fmask=0133") the way Linux
    /// does: left to right, a later option overriding an earlier one (`umask` sets both masks),
    /// masks in octal, ids in decimal. Options that do not change the presentation (`defaults`,
    /// `ro`, `utf8`, `shortname=mixed`, `iocharset=...`, ...) are ignored.
    public static func parse(_ text: String) throws -> FATMountOptions {
        var o = FATMountOptions()
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            let key = parts[0].trimmingWhitespace
            let value = parts.count > 1 ? parts[1].trimmingWhitespace : nil
            func number(_ radix: Int, _ limit: UInt32) throws -> UInt32 {
                guard let value, !value.isEmpty, let n = UInt32(value, radix: radix), n <= limit else {
                    throw FWError(.invalidArgument, "vfat mount option '\(item)': expected a \(radix == 8 ? "octal mask up to 0777" : "number")")
                }
                return n
            }
            switch key {
            case "uid": o.uid = try number(10, UInt32.max)
            case "gid": o.gid = try number(10, UInt32.max)
            case "umask":
                o.umask = UInt16(try number(8, 0o777))
                o.fmask = o.umask
                o.dmask = o.umask
            case "fmask": o.fmask = UInt16(try number(8, 0o777))
            case "dmask": o.dmask = UInt16(try number(8, 0o777))
            default: continue
            }
        }
        return o
    }

    /// Permission bits of a directory.
    func directoryPermissions() -> UInt16 { 0o777 & ~dmask }

    /// Permission bits of a file with the given attributes.
    func filePermissions(readOnly: Bool) -> UInt16 {
        (readOnly ? 0o555 : 0o777) & ~fmask
    }
}

extension Substring {
    fileprivate var trimmingWhitespace: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
