/**
 * Which addresses a webhook may be sent to. A webhook URL is chosen by a user and fetched by the
 * platform from inside its network, so without a check anyone could make it POST to its own
 * loopback, the cluster's private services or a cloud metadata address (SSRF). Every address a
 * host name resolves to is checked (one private address among public ones is enough to refuse it),
 * at registration and again at each delivery, where the checked addresses are the ones connected
 * to (a name that resolves differently the second time cannot slip past).
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { BlockList, isIP } from "node:net";

const blocked = new BlockList();
for (const [network, prefix] of [
  ["0.0.0.0", 8], // "this network", 0.0.0.0 included
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8],
  ["169.254.0.0", 16], // link-local, cloud metadata
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
] as const) blocked.addSubnet(network, prefix, "ipv4");
for (const [network, prefix] of [
  ["::", 128], // unspecified
  ["::1", 128], // loopback
  ["fc00::", 7], // unique local
  ["fe80::", 10], // link-local
  ["ff00::", 8], // multicast
] as const) blocked.addSubnet(network, prefix, "ipv6");

/** The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) or NAT64 (`64:ff9b::a.b.c.d`) IPv6 address. */
function embeddedIpv4(address: string): string | null {
  const lower = address.toLowerCase();
  const dotted = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted) return dotted[1] as string;
  const hex = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (!hex) return null;
  const high = parseInt(hex[1] as string, 16);
  const low = parseInt(hex[2] as string, 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/** Whether an IP address (v4 or v6 text) is loopback, private, link-local or otherwise not public. */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, "ipv4");
  if (family !== 6) return true; // not an address at all: never a public one
  const inner = embeddedIpv4(address);
  if (inner) return blocked.check(inner, "ipv4");
  return blocked.check(address, "ipv6");
}

/** A URL's host as an address or name (`[::1]` → `::1`). */
export const hostOf = (url: URL): string => url.hostname.replace(/^\[(.*)\]$/, "$1");

export class AddressRefused extends Error {}

/** Every address `host` resolves to (itself when it is one). */
export function resolveAll(host: string): Promise<LookupAddress[]> {
  if (isIP(host)) return Promise.resolve([{ address: host, family: isIP(host) }]);
  return new Promise((resolve, reject) => dnsLookup(host, { all: true, verbatim: true }, (error, addresses) => (error ? reject(error) : resolve(addresses))));
}

/** Resolves `host` and refuses it (AddressRefused) when any of its addresses is not public. */
export async function publicAddresses(host: string): Promise<LookupAddress[]> {
  const addresses = await resolveAll(host);
  const refused = addresses.find((a) => isPrivateAddress(a.address));
  if (refused) throw new AddressRefused(`${host} resolves to ${refused.address}, a private, loopback or link-local address`);
  if (addresses.length === 0) throw new AddressRefused(`${host} resolves to no address`);
  return addresses;
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for node:http that connects only to checked addresses (or to any, when private ones
 * are allowed): what is checked is what is connected to.
 */
export function checkedLookup(allowPrivate: boolean) {
  return (hostname: string, options: { all?: boolean }, callback: LookupCallback): void => {
    const found = allowPrivate ? resolveAll(hostname) : publicAddresses(hostname);
    found.then(
      (addresses) => {
        if (options.all) callback(null, addresses);
        else callback(null, (addresses[0] as LookupAddress).address, (addresses[0] as LookupAddress).family);
      },
      // The AddressRefused itself reaches the request's "error" listener (send.ts tells it apart).
      (error: NodeJS.ErrnoException) => callback(error, ""),
    );
  };
}
