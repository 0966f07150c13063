export * from './jsconnect.codec';
export * from './jsconnect.errors';
