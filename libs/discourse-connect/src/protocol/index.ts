export * from './discourse-connect.codec';
export * from './discourse-connect.errors';
export * from './discourse-connect.fields';
